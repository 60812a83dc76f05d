"""The `kerasllm` console script. Each subcommand lives in its own module with an
`add_parser(subparsers)` function that registers it and sets `func` to its handler.

Output: TensorFlow's own log lines (its C++ INFO/WARNING/ERROR lines such as "failed call to
cuInit" on a machine without a GPU, the oneDNN and cudart notices printed while it loads, and
absl's Python warnings) are hidden by default; `kerasllm --verbose COMMAND ...` shows them, and
so does setting `TF_CPP_MIN_LOG_LEVEL` yourself (0 shows everything; kerasllm only sets it when
it is unset).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence

# Subcommand modules in the order `--help` lists them.
SUBCOMMANDS = (
    "zoo",
    "pretrain",
    "finetune",
    "predict",
    "generate",
    "evaluate",
    "export",
    "tune",
    "compress",
)


#: `TF_CPP_MIN_LOG_LEVEL` when the user has not set it (3: only FATAL lines; failures the
#: user can act on reach Python as exceptions). `kerasllm/__init__.py` sets the same.
QUIET_TF_LOG_LEVEL = "3"

# One line of TensorFlow's C++ (absl) log: severity letter, date, time (whose seconds field
# can be a Unix time: "I0000 00:00:1796350868.02"), thread, file:line].
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITIES = "IWEF"
# Second lines of multi-line records TensorFlow logs while it loads.
_CONTINUATIONS = ("To enable the following instructions",)


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_tf_log(text: str, min_level: int) -> str:
    """`text` (what TensorFlow wrote to stderr while it loaded) without its log lines below
    `min_level` (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL), and without absl's "All log messages
    before absl::InitializeLog()" notice when `min_level` > 0.

    TensorFlow writes those lines while its libraries load, before its logging reads
    `TF_CPP_MIN_LOG_LEVEL`. Every other line is kept, except the known second line of a
    dropped record ("To enable the following instructions: ..." of the CPU-feature notice):
    a Python warning that follows a dropped line must not be lost.
    """
    kept, dropped_record = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            drop = dropped_record = _SEVERITIES.index(match.group(1)) < min_level
        elif line.startswith(_PRE_INIT_NOTICE):
            drop, dropped_record = min_level > 0, False
        else:
            drop = dropped_record and line.startswith(_CONTINUATIONS)
            dropped_record = False
        if not drop:
            kept.append(line)
    return "".join(kept)


def import_tensorflow_quietly(quiet_absl: bool = True) -> None:
    """Imports TensorFlow (if not yet imported) with what it writes to the process's stderr
    filtered by `filter_tf_log` at the `TF_CPP_MIN_LOG_LEVEL` level, and (`quiet_absl`) sets
    absl's Python logging to errors only when that level hides warnings; a program that logs
    its own progress through absl (examples/translate.py) passes `quiet_absl=False`."""
    level = _min_log_level()
    if "tensorflow" not in sys.modules and level > 0:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
                sys.stderr.write(filter_tf_log(text, level))
                sys.stderr.flush()
    if quiet_absl and level >= 2:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


def _top_level_options(argv: Sequence[str]) -> list[str]:
    """The options before the subcommand's name (`kerasllm --verbose zoo list`)."""
    options = []
    for argument in argv:
        if not argument.startswith("-"):
            break
        options.append(argument)
    return options


# A help string that already says its default ("(default: 128)", "Default: the bundle's
# length"), in the one spelling the CLI uses.
_STATES_DEFAULT = re.compile(r"\bdefault:", re.IGNORECASE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The `--help` layout of every kerasllm command: descriptions and epilogs as written (their
    examples are laid out by hand), and each option's default after its help.

    Unlike `argparse.ArgumentDefaultsHelpFormatter`, a default is appended only where it says
    something: not for required options, on/off switches (off unless given) or options whose
    default is None or empty (their help says in words what leaving them out does, as
    "default: ..."), and not twice where the help already states it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.required
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default in ([], ())
            or "%(default)" in text
            or _STATES_DEFAULT.search(text)
        ):
            return text
        return f"{text.rstrip()} (default: %(default)s)"


def _use_help_formatter(parser: argparse.ArgumentParser) -> None:
    """Gives `parser` and all its subcommands' parsers (at any depth) `HelpFormatter`, so
    every command's help looks the same whatever its module passed to `add_parser`."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _use_help_formatter(subparser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerasllm",
        description="kerasllm: transformer language models in Keras 3 / TensorFlow.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        dest="tf_logs",
        help="show TensorFlow's own log lines (C++ INFO/WARNING/ERROR lines, absl warnings), "
        "hidden by default; TF_CPP_MIN_LOG_LEVEL=0 does the same. Give it before COMMAND.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"kerasllm.cli.{name}").add_parser(subparsers)
    _use_help_formatter(parser)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    # Before TensorFlow loads: it reads its log level once. (Read from argv: the parser is
    # built after this, and a subcommand module could import TensorFlow.)
    if {"-v", "--verbose"} & set(_top_level_options(argv)):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_LOG_LEVEL)
    # `kill` (SIGTERM) stops training like Ctrl-C: the trainer saves a checkpoint first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Parsing imports no TensorFlow, so `--help` and usage errors stay instant; the command
    # then loads it with the lines it prints while loading filtered.
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
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
