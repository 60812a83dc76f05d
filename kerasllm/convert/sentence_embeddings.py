"""Sentence embeddings the way a sentence-transformers checkpoint defines them.

A sentence-transformers folder (e.g. all-MiniLM-L6-v2) lists its modules in `modules.json`:
the transformer, a `Pooling` module (its `config.json` picks mean, CLS or max pooling) and
optionally `Normalize` (unit L2 norm). `read_pooling_config` reads those choices and
`sentence_embeddings` applies them to an `Encoder`'s token states.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras import ops

POOLING_MODES = ("mean", "cls", "max")
# sentence-transformers Pooling config flag -> our mode.
_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
_UNSUPPORTED_FLAGS = (
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def read_pooling_config(directory: str | os.PathLike) -> dict:
    """The pooling of a sentence-transformers checkpoint folder.

    Args:
        directory: folder holding `modules.json`.

    Returns:
        `{"pooling": "mean" | "cls" | "max", "normalize": bool}`.

    Raises:
        ValueError: no Pooling module, or a pooling mode other than exactly one of
            `POOLING_MODES`.
    """
    directory = Path(directory)
    modules_path = directory / "modules.json"
    if not modules_path.is_file():
        raise FileNotFoundError(
            f"{directory} has no modules.json: not a sentence-transformers model."
        )
    modules = json.loads(modules_path.read_text(encoding="utf-8"))
    pooling = [m for m in modules if m.get("type", "").endswith(".Pooling")]
    if len(pooling) != 1:
        raise ValueError(f"{modules_path} must list exactly one Pooling module; found {pooling}.")
    config = json.loads((directory / pooling[0]["path"] / "config.json").read_text())
    unsupported = [flag for flag in _UNSUPPORTED_FLAGS if config.get(flag)]
    modes = [mode for flag, mode in _POOLING_FLAGS.items() if config.get(flag)]
    if unsupported or len(modes) != 1:
        raise ValueError(
            f"Pooling config of {directory} sets {unsupported + modes}; exactly one of "
            f"{list(_POOLING_FLAGS)} is supported."
        )
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    return {"pooling": modes[0], "normalize": normalize}


def sentence_embeddings(
    backbone, inputs: dict, pooling: str = "mean", normalize: bool = False, training=False
):
    """Pools an `Encoder`'s token states into one vector per sequence, over real tokens only.

    Matches sentence-transformers' `Pooling` (+ `Normalize`): "mean" averages the states where
    `padding_mask` is 1, "cls" takes the first token, "max" takes the feature-wise max over real
    tokens; `normalize` scales each vector to unit L2 norm.

    Args:
        backbone: an `Encoder`.
        inputs: the encoder's input dict (`token_ids`, `padding_mask`, optional `segment_ids`).
        pooling: one of `POOLING_MODES`.
        normalize: L2-normalize the result.
        training: forwarded to the backbone (dropout).

    Returns:
        A float tensor (B, hidden_dim).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> x = {"token_ids": np.ones((2, 5), "int32"), "padding_mask": np.ones((2, 5), "int32")}
    >>> e = sentence_embeddings(encoder, x, normalize=True)
    >>> tuple(e.shape), np.allclose(np.linalg.norm(e, axis=-1), 1.0, atol=1e-5)
    ((2, 8), True)
    """
    if pooling not in POOLING_MODES:
        raise ValueError(f"`pooling` must be one of {list(POOLING_MODES)}; got {pooling!r}.")
    hidden = backbone(inputs, training=training)["sequence_output"]
    padding_mask = inputs.get("padding_mask")
    if padding_mask is None:
        padding_mask = ops.ones_like(inputs["token_ids"])
    mask = ops.cast(padding_mask, hidden.dtype)[:, :, None]
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "mean":
        # sentence-transformers clamps the token count at 1e-9.
        pooled = ops.sum(hidden * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)
    else:
        pooled = ops.max(ops.where(mask > 0, hidden, ops.cast(-1e9, hidden.dtype)), axis=1)
    if normalize:
        norm = ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True))
        pooled = pooled / ops.maximum(norm, 1e-12)
    return pooled
