"""Extractive question answering on the news cloze set: fine-tuned `minilm_l6`, the same
encoder from scratch, and two baselines, scored with SQuAD exact match and F1.

    python examples/question_answering.py --baselines
    python examples/question_answering.py --model minilm_l6 --max-train-seconds 540
    python examples/question_answering.py --model scratch --max-train-seconds 540
    python examples/question_answering.py --model minilm_l6 --save runs/qa/bundle

Each run prints one JSON line (EM/F1 on the test split, sizes, training time); docs/
question_answering.md holds the measured figures. `--save` writes a bundle that `kerasllm
predict`, `kerasllm evaluate` and `kerasllm export` take.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time

import keras

from kerasllm import bundle, metrics, zoo
from kerasllm import data as kd
from kerasllm.datasets import news_cloze
from kerasllm.datasets.reading_comprehension import PLACEHOLDER, as_columns
from kerasllm.metrics.squad import normalize_answer
from kerasllm.preprocessors import QuestionAnswererPreprocessor

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in")
    + ("is", "it", "of", "on", "or", "says", "that", "the", "to", "was", "were", "with")
)


# ------------------------------------------------------------------ baselines
def _words(text: str) -> list[str]:
    return normalize_answer(text.replace(PLACEHOLDER, " ")).split()


def overlap_baseline(question: str, context: str) -> str:
    """The context sentence sharing the most (normalized) words with the question."""
    wanted = set(_words(question)) - _STOP
    sentences = [s for s in _SENTENCE.split(context) if s.strip()] or [""]
    return max(sentences, key=lambda s: len(wanted & set(_words(s))))


def frequency_baseline(question: str, context: str) -> str:
    """The context's most frequent word (not a stopword, not in the question), as written."""
    asked = set(_words(question))
    counts = collections.Counter()
    written = {}
    for word in re.findall(r"[\w'\-]+", context):
        key = normalize_answer(word)
        if len(key) < 3 or key in _STOP or key in asked:
            continue
        counts[key] += 1
        written.setdefault(key, word)
    return written[counts.most_common(1)[0][0]] if counts else ""


# ------------------------------------------------------------------ models
class TimeLimit(keras.callbacks.Callback):
    """Stops training once `seconds` have passed (checked after each batch)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.start = time.monotonic()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def train(args, train_columns):
    pretrained = args.model != "scratch"
    if args.init_from:
        # Training continued from an earlier run's bundle (its weights and tokenizer).
        model = bundle.load(args.init_from).model
    else:
        model = zoo.get(
            "minilm_l6", task="question_answerer", weights="pretrained" if pretrained else None
        )
    tokenizer = zoo.get_tokenizer("minilm_l6")
    model.preprocessor = QuestionAnswererPreprocessor(
        tokenizer, args.sequence_length, stride=args.stride
    )
    count = min(args.train_pairs, len(train_columns["question"]))
    spans = list(zip(train_columns["answer_start"], train_columns["answer_end"]))[:count]
    dataset, stats = kd.question_answering_dataset(
        train_columns["question"][:count],
        train_columns["context"][:count],
        spans,
        tokenizer,
        args.sequence_length,
        args.batch_size,
        stride=args.stride,
        unanswered_fraction=args.unanswered_fraction,
        seed=args.seed,
        drop_remainder=True,
    )
    learning_rate = args.learning_rate or (5e-5 if pretrained else 3e-4)
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=0.01)
    model.compile(optimizer=optimizer)
    limit = TimeLimit(args.max_train_seconds)
    started = time.monotonic()
    # The dataset holds framed windows (token ids), not text: Keras' own `fit` takes it as is
    # (`Task.fit` would run the text preprocessor over it).
    history = keras.Model.fit(model, dataset, epochs=args.epochs, callbacks=[limit], verbose=2)
    seconds = time.monotonic() - started
    info = {
        "train_pairs": count,
        **{f"train_{k}": v for k, v in stats.items()},
        "train_steps": limit.steps,
        "train_seconds": round(seconds, 1),
        "learning_rate": learning_rate,
        "final_loss": round(float(history.history["loss"][-1]), 4),
    }
    return model, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("minilm_l6", "scratch"), default=None)
    parser.add_argument("--baselines", action="store_true", help="score the baselines only")
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--train-pairs", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train-seconds", type=float, default=540.0)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--unanswered-fraction", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--max-eval-pairs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained model as a bundle here")
    parser.add_argument(
        "--init-from", default=None, help="continue training the model of this bundle"
    )
    args = parser.parse_args(argv)
    if not args.baselines and args.model is None:
        parser.error("pass --model minilm_l6|scratch or --baselines")
    keras.utils.set_random_seed(args.seed)

    test = as_columns(news_cloze(args.split))
    if args.max_eval_pairs:
        test = {k: v[: args.max_eval_pairs] for k, v in test.items()}
    result = {"split": args.split, "eval_pairs": len(test["question"])}
    if args.baselines:
        for name, baseline in (("overlap", overlap_baseline), ("frequency", frequency_baseline)):
            predictions = [baseline(q, c) for q, c in zip(test["question"], test["context"])]
            result[name] = metrics.squad(predictions, test["answers"])
        print(json.dumps(result))
        return 0

    model, info = train(args, as_columns(news_cloze("train")))
    started = time.monotonic()
    answers = model.answer(test["question"], test["context"], batch_size=32)
    scores = metrics.squad([a["answer"] for a in answers], test["answers"])
    result.update(
        model=args.model,
        init_from=args.init_from,
        sequence_length=args.sequence_length,
        stride=args.stride,
        **info,
        eval_seconds=round(time.monotonic() - started, 1),
        **scores,
        examples=[
            {"question": q, "gold": g[0], "predicted": a["answer"], "score": round(a["score"], 3)}
            for q, g, a in list(zip(test["question"], test["answers"], answers))[:5]
        ],
    )
    if args.save:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        bundle.Bundle(
            model,
            {"text": model.preprocessor.tokenizer},
            {
                "preset": "minilm_l6",
                "objective": "span_extraction",
                "sequence_length": args.sequence_length,
            },
        ).save(args.save)
        result["saved"] = args.save
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
