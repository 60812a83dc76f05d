"""Rotten Tomatoes sentiment: what pretraining buys, measured with the project's Trainer.

Three runs on the same data, tokenizer (all-MiniLM-L6-v2's uncased WordPiece, 30,522 tokens),
sequence length and batch size, each evaluated on the held-out test split (1,281 reviews):

- scratch: a `bert_small`-shaped encoder (L=4, H=512, 28.8M parameters), randomly initialized;
- full:    the pretrained `minilm_l6` preset (L=6, H=384, 22.7M), every weight fine-tuned;
- frozen:  `minilm_l6` frozen; only a linear head on its mean-pooled token states is trained.

All three classify the mean of the final token states over real tokens (`pooling="mean"`, the
pooling all-MiniLM-L6-v2 was trained with). Runs write checkpoints and TensorBoard logs under
`--model-dir/<run>`; rerunning resumes (a finished run is only re-evaluated).

    .venv/bin/python examples/finetune_sentiment.py                 # the three runs
    .venv/bin/python examples/finetune_sentiment.py --runs frozen   # one of them
    .venv/bin/python examples/finetune_sentiment.py --steps 50 --model-dir /tmp/smoke  # quick try

Results and the commands that produced them are in docs/pretrained.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerasllm import data, zoo  # noqa: E402
from kerasllm.datasets import rotten_tomatoes  # noqa: E402
from kerasllm.models import SequenceClassifier  # noqa: E402
from kerasllm.training import Trainer, TrainerConfig  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Run:
    """One configuration: which backbone, whether its weights are pretrained and trained."""

    preset: str
    pretrained: bool
    freeze_backbone: bool
    learning_rate: float
    steps: int
    description: str


RUNS = {
    "scratch": Run("bert_small", False, False, 1e-4, 640, "bert_small-shaped, from scratch"),
    "full": Run("minilm_l6", True, False, 1e-4, 640, "MiniLM-L6 pretrained, fully fine-tuned"),
    "frozen": Run("minilm_l6", True, True, 3e-3, 640, "MiniLM-L6 frozen + trained linear head"),
}


def build_classifier(run: Run, dropout: float) -> SequenceClassifier:
    # The frozen backbone is a fixed feature extractor: no dropout inside it.
    backbone = zoo.get(
        run.preset,
        weights="default" if run.pretrained else None,
        dropout=0.0 if run.freeze_backbone else dropout,
    )
    return SequenceClassifier(backbone, num_classes=2, dropout=dropout, pooling="mean")


def datasets(tokenizer, sequence_length: int, batch_size: int, seed: int):
    def split(name, training):
        texts, labels = rotten_tomatoes(name)
        dataset, _ = data.classification_dataset(
            texts,
            labels,
            tokenizer,
            sequence_length=sequence_length,
            batch_size=batch_size,
            seed=seed,
            shuffle=training,
            bucketing=True,  # pad each batch to its longest review, not to sequence_length
        )
        return dataset

    return split("train", True), split("validation", False), split("test", False)


def train_and_test(name: str, run: Run, args, splits) -> dict:
    train, validation, test = splits
    steps = args.steps or run.steps
    config = TrainerConfig(
        model_dir=str(Path(args.model_dir) / name),
        steps=steps,
        learning_rate=run.learning_rate,
        warmup_steps=steps // 10,
        decay="linear",
        freeze_backbone=run.freeze_backbone,
        checkpoint_every=steps,
        log_every=max(1, steps // 10),
        seed=args.seed,
        verbose=2,
    )
    began = time.perf_counter()
    trainer = Trainer(lambda: build_classifier(run, args.dropout), "classification", config)
    history = trainer.fit(train, eval_data=validation)
    result = {
        "run": name,
        "description": run.description,
        "steps": steps,
        "learning_rate": run.learning_rate,
        "trainable_parameters": int(sum(v.numpy().size for v in trainer.trainable_variables)),
        "validation": history["eval"],
        "test": trainer.evaluate(test),
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The flags, spelled as the `kerasllm` commands spell theirs, each help with its default."""
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS), help="Runs to do."
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="Updates per run. Default: 640 (each run's own)."
    )
    parser.add_argument("--batch-size", type=int, default=32, help="Examples per update.")
    parser.add_argument("--sequence-length", type=int, default=64, help="Tokens per review.")
    parser.add_argument("--dropout", type=float, default=0.1, help="Dropout rate.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data order and head.")
    parser.add_argument(
        "--model-dir",
        default="runs/finetune_sentiment",
        help="Where the runs go (one folder each; rerunning resumes).",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    tokenizer = zoo.get_tokenizer("minilm_l6")
    splits = datasets(tokenizer, args.sequence_length, args.batch_size, args.seed)
    results = [train_and_test(name, RUNS[name], args, splits) for name in args.runs]

    print("\n| run | trainable params | steps | validation acc | test acc | test F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['description']} | {r['trainable_parameters']:,} | {r['steps']} | "
            f"{r['validation']['accuracy']:.4f} | {r['test']['accuracy']:.4f} | "
            f"{r['test']['f1']:.4f} |"
        )
    out = Path(args.model_dir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nWrote {out}")


if __name__ == "__main__":
    main()
