"""Tune a small sentiment classifier on Rotten Tomatoes, then retrain the best trial.

Run: python examples/tune.py [SEARCH_DIR]   (rerun to resume; about 2 minutes on 2 CPU cores)
Each trial shows its progress on standard error.
"""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    """The command line: one optional folder, with its default in the help."""
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument(
        "search_dir",
        nargs="?",
        default="runs/tune_example",
        metavar="SEARCH_DIR",
        help="The search's folder (rerunning resumes). Default: runs/tune_example.",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    search_dir = build_parser().parse_args(argv).search_dir
    from kerasllm import zoo
    from kerasllm.tuning import SearchSpace, retrain_best, run_search

    space = SearchSpace(
        num_layers=[1, 2],
        num_heads=[2, 4],
        hidden_dim=[32, 48, 64],
        intermediate_dim=[64, 128],
        learning_rate=[1e-3, 3e-3],
        batch_size=[16, 32],
    )
    result = run_search(
        "bert_tiny",
        "classification",
        "rotten_tomatoes",
        search_dir,
        space,
        algorithm="random",
        metric="accuracy",
        max_trials=4,
        steps=50,
        sequence_length=48,
        vocabulary_size=2000,
        max_train_examples=2000,
        max_eval_examples=256,
    )
    print("best validation accuracy", result["objective"], result["best_values"])
    model = zoo.get(result["best_preset"], task="classifier", num_classes=2, weights=None)
    print(
        "best preset reloads:", model.backbone.num_layers, "layers,", model.count_params(), "params"
    )
    history = retrain_best(search_dir, steps=200)
    print("retrained:", history["eval"], "test:", history["test"])


if __name__ == "__main__":
    main()
