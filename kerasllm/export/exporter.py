"""`export`: a model bundle or preset to a versioned SavedModel that TF Serving loads as is."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from kerasllm import bundle as bundle_lib
from kerasllm.export.serving import ServingModule, serving_module
from kerasllm.export.warmup import write_warmup_requests
from kerasllm.utils.progress import Progress

#: Ops that call back into Python; TF Serving has no Python, so an export must not hold them.
PYTHON_OPS = ("PyFunc", "PyFuncStateless", "EagerPyFunc")

#: The ops beyond core TensorFlow that kerasllm's tokenizers put in an export, all from
#: tensorflow-text: the model server must link them (docs/serving.md lists which do).
TENSORFLOW_TEXT_OPS = (
    "NormalizeUTF8",  # NFKC / NFD normalization (SentencePiece, WordPiece)
    "SentencepieceOp",  # the SentencePiece model resource
    "SentencepieceTokenizeOp",
    "SentencepieceDetokenizeOp",
    "RegexSplitWithOffsets",  # pre-tokenization of byte-level BPE and WordPiece
    "FastWordpieceTokenizeWithOffsets",
    "TFText>FastWordpieceDetokenize",  # tensorflow-text registers it under this name
    "TFText>RoundRobinTrim",  # sentence pairs (`classify_pairs`): the longer side cut first
)


def existing_versions(model_base: str | os.PathLike) -> list[int]:
    """Version numbers already under `model_base` (its all-digit subfolders), ascending."""
    base = Path(model_base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _resolve(model, task: str | None) -> bundle_lib.Bundle:
    """A `Bundle` from a bundle, a bundle folder or a preset name."""
    if isinstance(model, bundle_lib.Bundle):
        return model
    if bundle_lib.is_bundle(model):
        return bundle_lib.load(model)
    if os.path.exists(os.fspath(model)):
        raise FileNotFoundError(
            f"{model} is not a kerasllm model bundle (no {bundle_lib.CONFIG_FILENAME} in it)."
        )
    from kerasllm import zoo

    name = os.fspath(model)
    task_model = zoo.get(name, task=task)
    tokenizer = zoo.get_tokenizer(name)
    roles = ("source", "target") if task == "seq2seq_lm" else ("text",)
    return bundle_lib.Bundle(task_model, {role: tokenizer for role in roles}, {"preset": name})


def export(
    model,
    out: str | os.PathLike,
    *,
    task: str | None = None,
    max_length: int | None = None,
    beams: int = 4,
    length_penalty: float = 1.0,
    version: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Writes a SavedModel with text-in/text-out signatures to `out/VERSION/`.

    `out` is TF Serving's model base path (`BASE/NAME`); the export takes the next free
    version number (1, 2, ...) and never overwrites one: it is written to a hidden staging
    folder beside the versions (TF Serving ignores non-numeric folders) and renamed into place
    once complete, so a server watching `out` never sees a half-written version. Each export
    carries `assets.extra/tf_serving_warmup_requests` (one request per signature).

    Tokenization, truncation to the model's lengths, decoding (greedy, beam search, sampling)
    and detokenization all run in the graph; the SavedModel loads with only `tensorflow` and
    `tensorflow_text` imported. See `kerasllm.export.serving` for the signatures.

    Args:
        model: a `kerasllm.bundle.Bundle`, a bundle folder, or a zoo preset name (that ships
            a tokenizer).
        out: the model base path, e.g. `models/translate_en_fr`.
        task: the task of a preset (e.g. "seq2seq_lm", "classifier"); ignored for bundles.
        max_length: default most generated tokens per input (seq2seq and causal LMs);
            default: the bundle's `target_length` / what the model's positions allow.
        beams: beam width of the beam-search signature (seq2seq).
        length_penalty: beam search's length normalization exponent.
        version: an explicit version number; it must not exist yet.
        progress: a display of the `EXPORT_STAGES` (`update(stage, status=...)` as each
            begins; `kerasllm export` passes one with a heartbeat, so the minutes of tracing
            and saving show the time elapsed). Not closed here.

    Returns:
        The version folder written, `out/VERSION`.

    Raises:
        ValueError: an unsupported model, bad settings, or an existing `version`.
        FileNotFoundError: `model` is a folder that holds no bundle.

    Example:
    >>> import tempfile
    >>> from kerasllm import bundle, tokenizers, zoo
    >>> tok = tokenizers.train_wordpiece(["good film", "bad film"] * 20, vocabulary_size=40)
    >>> clf = zoo.get("bert_tiny", task="classifier", num_classes=2,
    ...               vocabulary_size=tok.vocabulary_size, num_layers=1, weights=None)
    >>> path = export(bundle.Bundle(clf, {"text": tok}), tempfile.mkdtemp() + "/sentiment")
    >>> path.name
    '1'
    """
    _stage(progress, 1)
    resolved = _resolve(model, task)
    module = serving_module(
        resolved.model,
        resolved.tokenizers,
        resolved.metadata,
        max_length=max_length,
        beams=beams,
        length_penalty=length_penalty,
    )
    return write(module, out, version=version, progress=progress)


#: What `export` does, in order; a `progress` display is updated as each begins.
EXPORT_STAGES = (
    "loading the model",
    "tracing and saving the signatures",
    "writing the warm-up requests",
    "checking the graph for Python ops",
)


def _stage(progress: Progress | None, number: int) -> None:
    if progress is not None:
        progress.update(number, status=EXPORT_STAGES[number - 1])


def write(
    module: ServingModule,
    out: str | os.PathLike,
    version: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Saves a serving module as the next version under `out` (see `export`)."""
    base = Path(out)
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(f"`version` must be a positive integer; got {version!r}.")
    if version is not None and (base / str(version)).exists():
        raise ValueError(f"{base / str(version)} exists; an export never overwrites a version.")
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base))
    try:
        saved = staging / "saved_model"
        _stage(progress, 2)
        tf.saved_model.save(module, str(saved), signatures=module.signatures())
        _stage(progress, 3)
        write_warmup_requests(saved, base.name, module.warmup_requests())
        _stage(progress, 4)
        _check_no_python_ops(saved)
        while True:
            number = version or (max(existing_versions(base), default=0) + 1)
            target = base / str(number)
            try:
                # mkdir claims the number atomically; the rename then fills the empty folder.
                target.mkdir()
            except FileExistsError:
                if version is not None:
                    raise ValueError(
                        f"{target} exists; an export never overwrites a version."
                    ) from None
                continue
            os.replace(saved, target)
            return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def graph_ops(export_dir: str | os.PathLike) -> list[str]:
    """Every op type a SavedModel runs: in its graphs and in all their library functions.

    A node whose type is a library function's name (a direct function call) is not an op
    and is left out; the function's own nodes are listed instead.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    found = set()
    for meta_graph in proto.meta_graphs:
        library = meta_graph.graph_def.library
        functions = {function.signature.name for function in library.function}
        nodes = list(meta_graph.graph_def.node)
        for function in library.function:
            nodes.extend(function.node_def)
        found.update(node.op for node in nodes if node.op not in functions)
    return sorted(found)


def python_ops(export_dir: str | os.PathLike) -> list[str]:
    """Names of Python-callback ops in a SavedModel's graph and functions (empty when clean)."""
    return [op for op in graph_ops(export_dir) if op in PYTHON_OPS]


def non_core_ops(export_dir: str | os.PathLike) -> list[str]:
    """The ops of a SavedModel that core TensorFlow does not register, sorted.

    Core ops are those of `tf.raw_ops`, which is generated when TensorFlow is built and so
    lists none of the ops that tensorflow-text (or any other library) registers when it is
    imported. An export of kerasllm's tokenizers needs exactly `TENSORFLOW_TEXT_OPS` beyond
    them (tested); TF Serving must link those (docs/serving.md). An `Xla*` op is not core:
    a graph that is not XLA-compiled should hold none.
    """
    core = set(dir(tf.raw_ops))
    return [op for op in graph_ops(export_dir) if op not in core]


def _check_no_python_ops(export_dir: Path) -> None:
    found = python_ops(export_dir)
    if found:
        raise ValueError(
            f"The export holds Python-function ops {found}, which TF Serving cannot run; "
            "a tokenizer or model uses tf.py_function."
        )
