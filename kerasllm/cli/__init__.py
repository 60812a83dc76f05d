"""The `kerasllm` console script. Each subcommand lives in its own module with an
`add_parser(subparsers)` function that registers it and sets `func` to its handler."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # `kill` (SIGTERM) stops training like Ctrl-C: the trainer saves a checkpoint first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"kerasllm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
