"""What `kerasllm predict`, `generate`, `evaluate` and `compress` share: the `--model` flag and
loading a task model that takes text, the evaluation flags (`add_evaluation_flags`), reading
texts (`--text`, `--input FILE`, standard input), writing JSON Lines (`--output`), and running
a function over the texts in batches with progress on standard error.

Results go to standard output (or `--output`) only; logs and progress go to standard error, so
`kerasllm predict ... > results.jsonl` holds nothing but results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

#: Texts per batch when `--batch-size` is not given (as Keras' `predict`).
DEFAULT_BATCH_SIZE = 32


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="BUNDLE_OR_PRESET",
        help="A model bundle folder (what `kerasllm finetune` / `pretrain` save, e.g. "
        "runs/sentiment/bundle) or a zoo preset name that ships a tokenizer and a task model "
        "(e.g. translate_en_fr; see `kerasllm zoo list`).",
    )


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """`--text`, `--input`, `--output` and `--batch-size`."""
    parser.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="An input text; repeat the flag for several. Default: read --input, or standard "
        "input when it is piped.",
    )
    parser.add_argument(
        "--input",
        default=None,
        metavar="FILE",
        help="A UTF-8 file with one input per line ('-': standard input). Default: standard "
        "input when it is piped and --text is not given.",
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help='Input lines are JSON: an object with a "text" field (other fields are ignored) '
        "or a JSON string.",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="Write the JSON Lines here (replaced atomically once complete). Default: standard "
        "output.",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="Inputs run through the model at once.",
    )


def add_evaluation_flags(
    parser: argparse.ArgumentParser,
    data_required: bool = True,
    data_help: str | None = None,
) -> None:
    """`--data`, `--split`, `--max-examples`, `--batch-size` and `--max-new-tokens`: the
    evaluation flags of `kerasllm evaluate`, which `kerasllm compress` shares (it evaluates
    the original and the compressed model through `evaluate`'s path)."""
    parser.add_argument(
        "--data",
        required=data_required,
        default=None,
        metavar="CORPUS_OR_FILE",
        help=data_help
        or "A built-in corpus (rotten_tomatoes, wnut, bible, news, news_headlines) or a data file.",
    )
    parser.add_argument(
        "--split",
        choices=("validation", "test"),
        default="test",
        help="Split of a built-in corpus (a file is evaluated whole).",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        metavar="N",
        help="Evaluate the first N examples only. Default: all.",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="Examples run through the model at once.",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="Seq2seq LM: most tokens generated per source. Default: the bundle's "
        "target_length - 1 (its metadata; the start token takes a slot), else what the "
        "model's positions allow (max_sequence_length - 1), so that no output is cut short.",
    )


def check_batch_size(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer; got {args.batch_size}.")
    return args.batch_size


def _lines(stream: Iterable[str]) -> list[str]:
    # One input per line: only the line break is removed (a text may start or end with
    # spaces); a blank line is an (empty) input, so results stay aligned with the lines.
    return [line.rstrip("\r\n") for line in stream]


def _from_json_lines(lines: list[str], pairs: bool = False) -> list:
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"--jsonl: line {number} is not JSON ({error}).") from None
        if pairs and isinstance(value, dict) and {"question", "context"} <= set(value):
            # A (question, context) pair for a question answerer.
            value = {"text_a": value["question"], "text_b": value["context"]}
        if pairs and isinstance(value, dict) and "text" not in value and "text_a" in value:
            pair = (value.get("text_a"), value.get("text_b"))
            if not all(isinstance(text, str) for text in pair):
                raise ValueError(
                    f'--jsonl: line {number}: a sentence pair needs string "text_a" and '
                    '"text_b" fields.'
                )
            texts.append(pair)
            continue
        if isinstance(value, dict):
            value = value.get("text")
        if not isinstance(value, str):
            pair_form = ', or "text_a" and "text_b" (a sentence pair)' if pairs else ""
            raise ValueError(
                f"--jsonl: line {number} must be a JSON string or an object with a string "
                f'"text" field{pair_form}.'
            )
        texts.append(value)
    return texts


def add_pair_argument(parser: argparse.ArgumentParser) -> None:
    """`--text-pair` (the second text of each `--text`, for sentence-pair classifiers)."""
    parser.add_argument(
        "--text-pair",
        action="append",
        default=[],
        metavar="TEXT",
        help="The second text of a sentence pair, one per --text in the same order (a model "
        'fine-tuned on text_a,text_b pairs). With --jsonl, objects with "text_a" and '
        '"text_b" fields are pairs. Default: single texts.',
    )


def read_texts(args: argparse.Namespace, stdin: TextIO | None = None, pairs: bool = False) -> list:
    """The inputs named by `--text` / `--input`, or piped on standard input (JSON Lines with
    `--jsonl`). With `pairs` (commands with `add_pair_argument`), `--text A --text-pair B` and
    JSON objects with "text_a" and "text_b" give `(a, b)` tuples among the texts."""
    second = getattr(args, "text_pair", None) or []
    if second and len(second) != len(args.text):
        raise ValueError(
            f"--text-pair gives the second text of each --text: {len(args.text)} --text but "
            f"{len(second)} --text-pair."
        )
    if getattr(args, "jsonl", False):
        if args.text:
            raise ValueError("--jsonl reads --input or standard input; --text takes plain text.")
        return _from_json_lines(_read_lines(args, stdin), pairs)
    if second:
        return list(zip(args.text, second))
    return _read_lines(args, stdin)


def _read_lines(args: argparse.Namespace, stdin: TextIO | None = None) -> list[str]:
    """The inputs named by `--text` / `--input`, or piped on standard input.

    Raises:
        ValueError: both `--text` and `--input` given; neither given while standard input is a
            terminal (nothing would arrive); `--input` is not a readable UTF-8 file.
    """
    stdin = sys.stdin if stdin is None else stdin
    if args.text and args.input is not None:
        raise ValueError("give inputs with --text or with --input, not both.")
    if args.text:
        return list(args.text)
    if args.input is None:
        if stdin is None or stdin.isatty():
            raise ValueError(
                "no input: give --text TEXT, --input FILE, or pipe lines into standard input "
                "(--input -)."
            )
        return _lines(stdin)
    if args.input == "-":
        return _lines(stdin)
    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"--input {args.input!r}: no such file.")
    try:
        with open(args.input, encoding="utf-8") as f:
            return _lines(f)
    except UnicodeDecodeError as error:
        raise ValueError(f"--input {args.input!r} is not UTF-8 text ({error}).") from None


@contextlib.contextmanager
def output_stream(path: str | None) -> Iterator[TextIO]:
    """Standard output, or the file `path` written beside and renamed over it on success (a
    failed run leaves no half-written results)."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    from kerasllm.utils.files import atomic_path

    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as f:
        yield f


def write_json_line(stream: TextIO, record: Any) -> None:
    # ensure_ascii=False: texts stay readable (JSON Lines are UTF-8).
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")


@dataclasses.dataclass
class Loaded:
    """A task model that takes text, and its bundle's metadata ({} for a preset)."""

    model: Any
    metadata: dict


def load_model(name: str, command: str) -> Loaded:
    """The task model of the bundle folder or preset `name`, with its preprocessor.

    Raises:
        FileNotFoundError / ValueError: no such bundle or preset (the zoo's message, after
            "--model"); the model takes no text (no tokenizer) or is a backbone, not a task.
    """
    from kerasllm import bundle as bundle_lib
    from kerasllm import zoo
    from kerasllm.models.task import Task

    try:
        if bundle_lib.is_bundle(name):
            loaded = bundle_lib.load(name)
            model, metadata = loaded.model, dict(loaded.metadata)
        else:
            model, metadata = zoo.get(name), {}
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"--model: {error}") from None
    if not isinstance(model, Task):
        raise ValueError(
            f"--model {name!r} builds a backbone ({type(model).__name__}), not a task model; "
            f"`kerasllm {command}` needs a bundle or a preset with a task (e.g. a fine-tuned "
            "bundle, or translate_en_fr)."
        )
    if model.preprocessor is None:
        raise ValueError(
            f"--model {name!r}: the {type(model).__name__} has no tokenizer, so it takes no "
            "text; use a bundle saved with its tokenizers, or a preset that ships one."
        )
    return Loaded(model, metadata)


def label_names(loaded: Loaded) -> list[str]:
    """The class names of a classifier or tagger: the bundle's "label_names" metadata when it
    has one per class, else "0", "1", ... (as the exported signatures name them)."""
    count = int(loaded.model.num_classes)
    names = loaded.metadata.get("label_names")
    if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
        return list(names)
    return [str(i) for i in range(count)]


def in_batches(
    texts: Sequence[str],
    batch_size: int,
    run: Callable[[list[str]], Iterable[Any]],
    emit: Callable[[Any], None],
    stream: TextIO | None = None,
) -> None:
    """Calls `run` on `texts` in batches of `batch_size` and `emit` on each of its results, in
    order; shows progress on `stream` (standard error) when there is more than one batch.

    Results are emitted batch by batch, so a long input file yields results as it goes.
    """
    from kerasllm.utils.progress import Progress

    progress = None
    if len(texts) > batch_size:
        progress = Progress(len(texts), stream=sys.stderr if stream is None else stream)
    try:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            for result in run(batch):
                emit(result)
            if progress is not None:
                progress.update(start + len(batch))
    finally:
        if progress is not None:
            progress.close()


def keras_progress(examples: int, batch_size: int, stream: TextIO | None = None):
    """A Keras callback that shows the batches of `model.evaluate` (or `predict`) on a
    `kerasllm.utils.progress.Progress` (standard error), with the running metrics: Keras' own
    progress bar writes to standard output, where the results go, and rewrites its line with
    control characters even in a redirected log.

    Pass it with `verbose=0`: `model.evaluate(..., verbose=0, callbacks=[keras_progress(n, b)])`.
    """
    import keras

    from kerasllm.utils.progress import Progress

    total = -(-examples // batch_size)  # batches, rounded up

    class ProgressCallback(keras.callbacks.Callback):
        def _begin(self, logs=None) -> None:
            shown_on = sys.stderr if stream is None else stream
            self.progress = Progress(total, stream=shown_on, label="batch")

        def _batch_end(self, batch: int, logs=None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
            self.progress.update(batch + 1, values)

        def _end(self, logs=None) -> None:
            self.progress.close()

        on_test_begin = on_predict_begin = _begin
        on_test_batch_end = on_predict_batch_end = _batch_end
        on_test_end = on_predict_end = _end

    return ProgressCallback()


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
