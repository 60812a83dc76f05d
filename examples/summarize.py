"""Headline generation (one-line summarization) on the news corpus with any seq2seq preset:
optional denoising pretraining on the news text (reconstruction of the whole text, or T5's
span corruption), fine-tuning on (article body -> title), ROUGE on the test articles against
the lead-N baseline, and a bundle that `kerasllm export` serves. See docs/summarization.md for
the figures and commands (the measured best: --sequence-length 64 --target-length 24, 20
minutes of denoising, 1,000 fine-tuning steps, --beams 4 --no-repeat-ngram-size 3).

    python examples/summarize.py --model transformer_tiny --model-dir /tmp/summ \\
        --pretrain-steps 2000 --finetune-steps 1500
    python examples/summarize.py --model transformer_tiny --model-dir /tmp/summ_scratch \\
        --pretrain-steps 0 --finetune-steps 1500 --tokenizer /tmp/summ/pretrain/tokenizer
    python examples/summarize.py --stage evaluate --model-dir /tmp/summ   # re-score a run

Stages (each resumes when rerun with the same --model-dir):
1. `MODEL_DIR/pretrain` (with --pretrain-steps > 0): `recipe.run(model, OBJECTIVE, "news")`
   with --pretrain-objective denoising (default: the decoder writes the whole original text)
   or span_corruption (it writes the dropped spans), a learned SentencePiece tokenizer with
   T5's 100 sentinel tokens.
2. `MODEL_DIR/finetune`: `recipe.run(model, "seq2seq", "news_headlines")` started from the
   pretraining checkpoint (`init_checkpoint`) with its tokenizer, or from scratch; bodies are
   cut to --sequence-length tokens, titles to --target-length.
3. Evaluation: greedy headlines of the test articles, ROUGE-1/2/L (`kerasllm.metrics.rouge`)
   next to lead-N with N tuned on the validation articles, written to
   `MODEL_DIR/finetune/bundle/eval.json` and printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

_DESCRIPTION = __doc__.split("\n\n", 1)[0]


#: Flags spelled with underscores (the spelling of earlier releases), still accepted.
_UNDERSCORED = (
    "model_dir",
    "pretrain_steps",
    "pretrain_minutes",
    "pretrain_objective",
    "finetune_steps",
    "finetune_minutes",
    "batch_size",
    "learning_rate",
    "sequence_length",
    "target_length",
    "vocabulary_size",
    "max_examples",
    "eval_split",
)


def normalize_flags(argv: list[str]) -> list[str]:
    """`argv` with the underscore spellings of this program's flags hyphenated
    (`--model_dir x` -> `--model-dir x`, `--batch_size=8` -> `--batch-size=8`): hidden
    aliases, so older commands run unchanged while `--help` shows the documented spelling.
    Values and everything after `--` are left as they are.

    Example:
    >>> normalize_flags(["--model_dir", "runs/a_b", "--batch_size=8", "--", "--model_dir"])
    ['--model-dir', 'runs/a_b', '--batch-size=8', '--', '--model_dir']
    """
    out = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[index:])
        name, equals, value = arg.partition("=")
        if name.startswith("--") and name[2:] in _UNDERSCORED:
            arg = "--" + name[2:].replace("_", "-") + equals + value
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line, hyphenated as the `kerasllm` commands and the other examples."""
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(description=_DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="transformer_tiny", help="a seq2seq zoo preset.")
    parser.add_argument("--model-dir", required=True, help="where the runs are written.")
    parser.add_argument("--pretrain-steps", type=int, default=0, help="0 skips pretraining.")
    parser.add_argument("--pretrain-minutes", type=float, default=None, help="time cap.")
    parser.add_argument(
        "--pretrain-objective",
        choices=("denoising", "span_corruption"),
        default="denoising",
        help="denoising: the decoder writes the whole original text (learns to copy its "
        "source; the start that beats lead-N, docs/summarization.md); span_corruption: it "
        "writes only the dropped spans (T5).",
    )
    parser.add_argument("--finetune-steps", type=int, default=1500)
    parser.add_argument("--finetune-minutes", type=float, default=None, help="time cap.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="initializers, dropout, shuffling.")
    parser.add_argument("--sequence-length", type=int, default=256, help="body tokens.")
    parser.add_argument("--target-length", type=int, default=32, help="title tokens + 1.")
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--tokenizer", default=None, help="a saved tokenizer (no pretraining).")
    parser.add_argument("--override", action="append", default=[], help="preset KEY=VALUE.")
    parser.add_argument("--max-examples", type=int, default=None, help="test articles scored.")
    parser.add_argument(
        "--stage",
        choices=("all", "pretrain", "finetune", "evaluate"),
        default="all",
        help="run one stage only (each in a process of its own): pretrain; finetune (then "
        "evaluate), which starts from MODEL_DIR/pretrain when --pretrain-steps > 0; evaluate.",
    )
    parser.add_argument("--bundle", default=None, help="with --stage evaluate: score this.")
    parser.add_argument(
        "--eval-split",
        choices=("validation", "test"),
        default="test",
        help="articles the headlines are scored on (choose settings on validation; lead-N's "
        "N is always tuned on validation).",
    )
    parser.add_argument("--beams", type=int, default=1, help="headline beam width (1: greedy).")
    parser.add_argument(
        "--no-repeat-ngram-size",
        type=int,
        default=0,
        help="never repeat an n-gram within a headline (0: off).",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags (hyphenated; the underscore spellings still work), validated."""
    parser = build_parser()
    args = parser.parse_args(normalize_flags(sys.argv[1:] if argv is None else list(argv)))
    for name in ("pretrain_steps", "finetune_steps", "batch_size", "sequence_length"):
        if getattr(args, name) < (0 if name == "pretrain_steps" else 1):
            flag = name.replace("_", "-")
            parser.error(f"--{flag} must be a positive int; got {getattr(args, name)}.")
    if args.beams < 1:
        parser.error(f"--beams must be a positive int; got {args.beams}.")
    if args.no_repeat_ngram_size < 0:
        parser.error(f"--no-repeat-ngram-size must be >= 0; got {args.no_repeat_ngram_size}.")
    if args.target_length < 2:
        parser.error(f"--target-length must be >= 2; got {args.target_length}.")
    if args.tokenizer and args.pretrain_steps:
        parser.error("--tokenizer is for runs without pretraining (pretraining learns one).")
    return args


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--override must be KEY=VALUE; got {item!r}.")
        out[key] = json.loads(value)
    return out


def _config(args, model_dir: str, steps: int, minutes: float | None, **kwargs):
    from kerasllm.training import TrainerConfig

    return TrainerConfig(
        model_dir,
        steps=steps,
        global_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=min(200, steps // 10),
        max_train_seconds=None if minutes is None else 60.0 * minutes,
        checkpoint_every=500,
        log_every=100,
        verbose=2,
        seed=args.seed,
        **kwargs,
    )


def pretrain(args) -> tuple[str, float]:
    """Stage 1: denoising pretraining on the news text; returns (its model_dir, seconds)."""
    from kerasllm.training import recipe

    model_dir = os.path.join(args.model_dir, "pretrain")
    began = time.perf_counter()
    recipe.run(
        args.model,
        args.pretrain_objective,
        "news",
        _config(args, model_dir, args.pretrain_steps, args.pretrain_minutes),
        sequence_length=args.sequence_length,
        vocabulary_size=args.vocabulary_size,
        model_overrides=_overrides(args.override),
    )
    return model_dir, time.perf_counter() - began


def finetune(args, pretrained_dir: str | None) -> tuple[str, float]:
    """Stage 2: (body -> title) from the pretrained checkpoint or from scratch."""
    from kerasllm.training import recipe

    model_dir = os.path.join(args.model_dir, "finetune")
    tokenizer = args.tokenizer
    kwargs = {}
    if pretrained_dir is not None:
        tokenizer = os.path.join(pretrained_dir, recipe.TOKENIZER_DIR)
        kwargs["init_checkpoint"] = pretrained_dir
    began = time.perf_counter()
    recipe.run(
        args.model,
        "seq2seq",
        "news_headlines",
        _config(args, model_dir, args.finetune_steps, args.finetune_minutes, **kwargs),
        sequence_length=args.sequence_length,
        target_length=args.target_length,
        tokenizer=tokenizer,
        vocabulary_size=None if tokenizer else args.vocabulary_size,
        model_overrides=_overrides(args.override),
    )
    return os.path.join(model_dir, recipe.BUNDLE_DIR), time.perf_counter() - began


def headlines(
    model, texts: list[str], max_new_tokens: int, sampler=None, batch_size: int = 32
) -> list[str]:
    """Headlines, one per text, greedy unless `sampler` says otherwise (the preprocessor cuts
    each body to the model's source length; an empty text gets a headline too)."""
    from kerasllm.generation import GreedySampler

    sampler = sampler or GreedySampler()
    out: list[str] = []
    for i in range(0, len(texts), batch_size):
        batch = texts[i : i + batch_size]
        out.extend(model.generate(batch, max_new_tokens=max_new_tokens, sampler=sampler))
    return out


def evaluate(
    bundle_dir: str,
    max_examples: int | None = None,
    beams: int = 1,
    no_repeat_ngram_size: int = 0,
    split: str = "test",
) -> dict:
    """Stage 3: ROUGE of the bundle's headlines of the `split` articles and of lead-N there
    (N tuned on validation)."""
    from kerasllm import bundle, metrics
    from kerasllm.datasets import news_headlines
    from kerasllm.generation import BeamSampler, GreedySampler

    loaded = bundle.load(bundle_dir)
    target_length = int(loaded.metadata.get("target_length", 32))
    valid_texts, valid_titles = news_headlines("validation")
    texts, titles = news_headlines(split)
    if max_examples is not None:
        texts, titles = texts[:max_examples], titles[:max_examples]
    n, _ = metrics.best_lead_n(valid_texts, valid_titles, candidates=range(1, 31))
    lead_scores = metrics.rouge([metrics.lead(t, n) for t in texts], titles)
    began = time.perf_counter()
    constraint = {"no_repeat_ngram_size": no_repeat_ngram_size}
    sampler = BeamSampler(beams, **constraint) if beams > 1 else GreedySampler(**constraint)
    generated = headlines(loaded.model, texts, target_length - 1, sampler)
    seconds = time.perf_counter() - began
    model_scores = metrics.rouge(generated, titles)
    return {
        "split": split,
        "articles": len(texts),
        "lead_n": n,
        "lead": {k: v for k, v in lead_scores.items() if k != "rouge_signature"},
        "model": {k: v for k, v in model_scores.items() if k != "rouge_signature"},
        "rouge_signature": model_scores["rouge_signature"],
        "decoding": repr(sampler),
        "decode_seconds": round(seconds, 1),
        "samples": [
            {"title": title, "generated": hyp, "lead": metrics.lead(text, n)}
            for text, title, hyp in list(zip(texts, titles, generated))[:5]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from kerasllm.utils.files import write_json

    timings = {}
    bundle_dir = args.bundle or os.path.join(args.model_dir, "finetune", "bundle")
    pretrained_dir = os.path.join(args.model_dir, "pretrain") if args.pretrain_steps else None
    if args.stage in ("all", "pretrain") and args.pretrain_steps:
        pretrained_dir, timings["pretrain_seconds"] = pretrain(args)
    if args.stage in ("all", "finetune"):
        bundle_dir, timings["finetune_seconds"] = finetune(args, pretrained_dir)
    if args.stage == "pretrain":
        print(json.dumps(timings))
        return 0
    scores = evaluate(
        bundle_dir, args.max_examples, args.beams, args.no_repeat_ngram_size, args.eval_split
    )
    result = {**scores, **timings}
    name = "eval.json" if args.eval_split == "test" else f"eval_{args.eval_split}.json"
    write_json(os.path.join(bundle_dir, name), result)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
