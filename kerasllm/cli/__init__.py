"""The `kerasllm` console script. Each subcommand lives in its own module with an
`add_parser(subparsers)` function that registers it and sets `func` to its handler."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable

# Subcommand modules in the order `--help` lists them.
SUBCOMMANDS = ("zoo", "pretrain", "finetune", "export", "tune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerasllm",
        description="kerasllm: transformer language models in Keras 3 / TensorFlow.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"kerasllm.cli.{name}").add_parser(subparsers)
    return parser


# What shells report for a process stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT_STATUS = 130


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand in this process; Ctrl-C raises `KeyboardInterrupt` after the trainer
    has saved a checkpoint (`console_main` is the `kerasllm` console script)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # `kill` (SIGTERM) stops training like Ctrl-C: the trainer saves a checkpoint first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"kerasllm {args.command}: error: {error}", file=sys.stderr)
        return 2


def exit_when_interrupted(function: Callable[[], int | None]) -> int:
    """Runs a command-line program's `function`; on Ctrl-C or `kill` (SIGTERM, made Ctrl-C),
    once the trainer has saved its checkpoint, ends the process at once with status 130.

    For scripts only: a normal interpreter exit would first wait for tf.data's background
    threads to wind down, which took from seconds to over a minute after an interrupted
    translation training run; by the time the interrupt arrives here every file is written
    (checkpoints and run records atomically, TensorBoard closed).
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return function() or 0
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT_STATUS)


def console_main() -> None:
    """The `kerasllm` console script."""
    sys.exit(exit_when_interrupted(main))
