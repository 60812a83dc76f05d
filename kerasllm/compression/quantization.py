"""Post-training quantization of kerasllm task models and bundles, through Keras' `quantize`.

What Keras' quantization reaches in a kerasllm model:

- every projection (attention query/key/value/output, feed-forward, pooler, task heads) is a
  `keras.layers.Dense` (`kerasllm/layers/dense.py`): Keras quantizes it;
- the token embedding (`TokenEmbedding`, built on Keras' `ReversibleEmbedding`) is quantized
  with its tied (or untied) output projection: an int8 (or int4) table with one scale per
  vocabulary row, looked up for the input and multiplied (int8 per-token activations) for the
  logits; `keep_embeddings=True` leaves it in float;
- layer norms, position tables and the attention softmax stay in float (Keras has no
  quantized form of them; they are a small share of the weights).

Modes: "int8" is Keras' W8A8 dynamic quantization (int8 weights with one scale per output
unit; activations quantized per token at run time, int32 accumulation); "int4" is
weight-only (two weights per byte, one scale per `block_size` inputs of each output unit;
activations stay float and the weights are unpacked before the matmul).

A quantized task model records which layers are quantized in its config
(`Task.quantization_spec`), so `Bundle.save` / `bundle.load`, `zoo.get(directory)`,
`.keras` files and `kerasllm export` treat it like any other model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from kerasllm import _compat
from kerasllm.bundle import WEIGHTS_FILENAME, Bundle
from kerasllm.layers import TokenEmbedding
from kerasllm.models.task import Task

MODES = ("int8", "int4")

#: Layers Keras can quantize (each implements `quantize`); every kerasllm projection is one.
_QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def quantize(
    target: Task | Bundle,
    mode: str = "int8",
    keep_embeddings: bool = False,
    block_size: int | None = 128,
) -> Task | Bundle:
    """Quantizes a task model, or a bundle's model, in place, and returns it.

    Args:
        target: a kerasllm task model (`Seq2SeqLM`, `SequenceClassifier`, ...) or a `Bundle`.
            A bundle's metadata gets a "compression" entry saying how it was quantized (its
            model card reads it from there).
        mode: "int8" (weights and dynamic per-token activations) or "int4" (weights only).
        keep_embeddings: leave the token embedding and the output projection it ties in float.
        block_size: int4 only: inputs per scale (sub-channel quantization); None for one
            scale per output unit.

    Returns:
        `target`, quantized.

    Raises:
        ValueError: an unknown `mode`, a bad `block_size`, a model that is already quantized
            or has no layer to quantize.
        TypeError: `target` is neither a kerasllm task model nor a `Bundle`.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> model = quantize(model, "int8")
    >>> sorted(quantized_layers(model).values())[:1], len(quantized_layers(model)) > 5
    (['int8'], True)
    """
    model = target.model if isinstance(target, Bundle) else target
    if not isinstance(model, Task):
        raise TypeError(
            "`target` must be a kerasllm task model or a kerasllm.bundle.Bundle; got "
            f"{type(target).__name__}."
        )
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {list(MODES)}; got {mode!r}.")
    if block_size is not None and (
        not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1
    ):
        raise ValueError(f"`block_size` must be a positive integer or None; got {block_size!r}.")
    if not isinstance(keep_embeddings, bool):
        raise ValueError(f"`keep_embeddings` must be True or False; got {keep_embeddings!r}.")
    already = quantized_layers(model)
    if already:
        raise ValueError(
            f"The model is already quantized ({len(already)} layers, e.g. "
            f"{next(iter(already))!r} in {next(iter(already.values()))}); quantize its float "
            "original instead."
        )

    chosen = [
        layer.path
        for layer in _compat.nested_layers(model)
        if isinstance(layer, _QUANTIZABLE)
        and not (keep_embeddings and isinstance(layer, TokenEmbedding))
    ]
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no layer that Keras can quantize.")
    if mode == "int8":
        config = keras.quantizers.Int8QuantizationConfig()
    else:
        config = keras.quantizers.Int4QuantizationConfig(block_size=block_size)
    # The one path that also rebuilds quantized models from their config (`Task.from_config`).
    model.apply_quantization_spec(
        [{"mode": mode, "config": keras.saving.serialize_keras_object(config), "layers": chosen}]
    )
    if isinstance(target, Bundle):
        steps = list(target.metadata.get("compression") or [])
        steps.append(describe(model, mode, keep_embeddings, block_size))
        target.metadata = {**target.metadata, "compression": steps}
    return target


def describe(
    model: Task, mode: str, keep_embeddings: bool, block_size: int | None = None
) -> dict[str, Any]:
    """The record a quantized bundle's metadata keeps under "compression" (one per step)."""
    layers = quantized_layers(model)
    embedding = next(
        (layer for layer in _compat.nested_layers(model) if isinstance(layer, TokenEmbedding)),
        None,
    )
    if mode == "int8":
        scheme = (
            "Keras int8 post-training quantization: int8 weights, one scale per output unit; "
            "activations quantized to int8 per token at run time (W8A8 dynamic)"
        )
    else:
        per = f"per {block_size} inputs" if block_size else "per output unit"
        scheme = (
            f"Keras int4 weight-only post-training quantization: int4 weights, one scale {per}; "
            "float activations"
        )
    return {
        "method": "quantization",
        "mode": mode,
        "scheme": scheme,
        "block_size": block_size if mode == "int4" else None,
        "quantized_layers": len(layers),
        "embeddings": (
            "float" if embedding is None or embedding.quantization_mode is None else mode
        ),
        "keep_embeddings": keep_embeddings,
        "keras_version": keras.__version__,
    }


def quantized_layers(model: keras.Model) -> dict[str, str]:
    """`{layer path: quantization mode}` of every quantized layer of `model` ({} for none)."""
    return {
        layer.path: layer.quantization_mode
        for layer in _compat.nested_layers(model)
        if layer.quantization_mode is not None
    }


def weights_file_size(bundle_directory: str | os.PathLike) -> int:
    """Bytes of a saved bundle's weights file (`model.weights.h5`)."""
    return (Path(bundle_directory) / WEIGHTS_FILENAME).stat().st_size
