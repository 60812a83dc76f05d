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
# A run that stopped on a failure explained in one line (a full disk, no readable checkpoint);
# 2 stays for bad arguments, as argparse uses it.
FAILURE_EXIT_STATUS = 1


def failure_message(error: BaseException, where: str | None = None) -> str | None:
    """The one-line explanation of a failure the user can act on, or None for any other error
    (a bug, whose traceback is worth more than a line).

    Such failures are a `CheckpointError` (a checkpoint that cannot be saved, or checkpoints of
    which none can be restored) and a full disk anywhere else (an event file, a tokenizer).

    Args:
        error: the exception that ended the command.
        where: the directory the command writes to, named in a disk-full message (Python's
            own "No space left on device" does not say which file).
    """
    from kerasllm.training.checkpointing import CheckpointError, is_disk_full

    if isinstance(error, CheckpointError):
        return " ".join(str(error).split())
    if is_disk_full(error):
        place = f" while writing to {where}" if where else ""
        return (
            f"no space left on device{place} ({' '.join(str(error).split())[:300]}). Free "
            "space on that disk, then rerun the same command (a training run resumes from its "
            "last checkpoint)."
        )
    return None


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
    except Exception as error:
        outputs = [getattr(args, name, None) for name in ("model_dir", "out", "search_dir")]
        where = next((str(path) for path in outputs if path), None)
        message = failure_message(error, where)
        if message is None:
            raise
        print(f"kerasllm {args.command}: error: {message}", file=sys.stderr)
        return FAILURE_EXIT_STATUS


def exit_when_interrupted(function: Callable[[], int | None], where: str | None = None) -> int:
    """Runs a command-line program's `function`; on Ctrl-C or `kill` (SIGTERM, made Ctrl-C),
    once the trainer has saved its checkpoint, ends the process at once with status 130. On a
    failure that `failure_message` explains (a full disk, no readable checkpoint), prints that
    one line after the program's name and ends the process at once with status 1 (`where`:
    the directory the program writes to, for that message).

    For scripts only: a normal interpreter exit would first wait for tf.data's background
    threads to wind down, which took from seconds to over a minute after an interrupted
    translation training run; by the time the interrupt arrives here every file is written
    (checkpoints and run records atomically, TensorBoard closed).
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    status = INTERRUPTED_EXIT_STATUS
    try:
        return function() or 0
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
    except Exception as error:
        message = failure_message(error, where)
        if message is None:
            raise
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "kerasllm"
        print(f"{program}: error: {message}", file=sys.stderr)
        status = FAILURE_EXIT_STATUS
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def console_main() -> None:
    """The `kerasllm` console script."""
    sys.exit(exit_when_interrupted(main))
