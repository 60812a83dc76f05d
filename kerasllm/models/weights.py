"""The model part of kerasllm training checkpoints: every variable of a model in order with its
canonical path (`ModelState`), and loading such a checkpoint, or a Keras weights file, into a
model that shares some or all of those weights (`load_model_weights`).

It sits with the models, below `kerasllm.training` (which writes these checkpoints and
re-exports these names from `training.checkpointing`), so that `zoo.get(weights=...)` and other
code that only loads weights does not import training.
"""

from __future__ import annotations

import os
import re

import keras
import tensorflow as tf

_PATHS_KEY = "model/paths/.ATTRIBUTES/VARIABLE_VALUE"
_SEED_GENERATOR = re.compile(r"(^|/)seed_generator_\d+(?=/)")


def canonical_path(path: str, model_name: str) -> str:
    """A variable path without the names Keras makes unique per process.

    A model's own weights are named after the model (`masked_lm_1/...` when several models live
    in one process), and dropout seed generators are numbered process-wide
    (`seed_generator_4/...`); neither says anything about the architecture.

    Example:
    >>> canonical_path("masked_lm_1/mlm_output_bias", "masked_lm_1")
    'mlm_output_bias'
    >>> canonical_path("encoder_layer_0/seed_generator_4/seed_generator_state", "m")
    'encoder_layer_0/seed_generator/seed_generator_state'
    """
    prefix = model_name + "/"
    path = path[len(prefix) :] if path.startswith(prefix) else path
    return _SEED_GENERATOR.sub(r"\1seed_generator", path)


def weights_by_path(model: keras.Model) -> dict[str, keras.Variable]:
    """A model's weights by `canonical_path`, without dropout seed states (which are not
    weights), as checkpoint loading, averaging and depth growth match them."""
    return {
        canonical_path(v.path, model.name): v
        for v in model.variables
        if "seed_generator" not in v.path
    }


class ModelState(tf.train.Checkpoint):
    """Every variable of a model (weights, non-trainable state, RNG seeds), in Keras' variable
    order, plus their paths.

    Restoring is positional, so it does not depend on layer names that Keras uniquifies per
    process; the saved paths are checked against the model's after a restore, and serve
    `load_model_weights` to match variables between different models (a pretrained backbone
    under a new head). (Keras 3 models do not expose their nested layer lists as checkpoint
    dependencies, so `tf.train.Checkpoint(model=model)` would miss most weights.)

    Args:
        model: the model whose variables to hold.
    """

    def __init__(self, model: keras.Model):
        paths = [canonical_path(v.path, model.name) for v in model.variables]
        super().__init__(
            variables=list(model.variables),
            paths=tf.Variable(paths, trainable=False, dtype=tf.string),
        )
        self._expected_paths = paths

    def verify_restored(self) -> None:
        """Raises a ValueError when the restored checkpoint came from another architecture."""
        restored = [p.decode() for p in self.paths.numpy()]
        if restored != self._expected_paths:
            mismatched = next(
                (a, b) for a, b in zip(restored + [None], self._expected_paths + [None]) if a != b
            )
            raise ValueError(
                f"the checkpoint holds a different model: {len(restored)} variables vs "
                f"{len(self._expected_paths)}; first difference {mismatched[0]!r} (checkpoint) vs "
                f"{mismatched[1]!r} (model)."
            )


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """A checkpoint prefix from a prefix or a directory (its newest checkpoint)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"No checkpoint in directory {path}.")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"{path} is neither a checkpoint directory nor a prefix.")
    return path


def load_model_weights(
    model: keras.Model, path: str | os.PathLike, require_all: bool = False
) -> tuple[int, int]:
    """Initializes `model` from a kerasllm training checkpoint or a Keras weights file.

    From a training checkpoint (directory or prefix), every variable whose path and shape match is
    loaded and the rest keep their values, so a pretrained `MaskedLM` checkpoint initializes the
    backbone of a `SequenceClassifier`. Dropout seed states are never copied. A `.weights.h5`
    file must match the whole model.

    Args:
        model: the model to initialize.
        path: a checkpoint directory (its newest checkpoint), prefix, or `.weights.h5` file.
        require_all: a ValueError unless the checkpoint covers every weight of the model (all
            variables but dropout seed states), instead of a partly initialized model.

    Returns:
        (variables loaded, variables of the model).
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"Weights file {path} does not exist.")
        model.load_weights(path)
        return len(model.variables), len(model.variables)
    prefix = resolve_checkpoint(path)
    reader, saved = _read_model_state(prefix)
    loaded = 0
    for variable in model.variables:
        key = saved.get(canonical_path(variable.path, model.name))
        if key is None or "seed_generator" in variable.path:
            continue
        value = reader.get_tensor(key)
        if tuple(value.shape) == tuple(variable.shape):
            variable.assign(value)
            loaded += 1
    if not loaded:
        raise ValueError(
            f"No variable of {model.name!r} matches checkpoint {prefix} by path and shape; is it "
            "a checkpoint of a model with the same backbone?"
        )
    if require_all:
        expected = len(weights_by_path(model))
        if loaded != expected:
            raise ValueError(
                f"Checkpoint {prefix} holds {loaded} of the {expected} weights of {model.name!r}; "
                "loading it whole needs the model it was saved from (same preset, task and "
                "overrides). To start from part of a checkpoint, leave `require_all` off."
            )
    return loaded, len(model.variables)


def _read_model_state(prefix: str):
    """(reader, {canonical variable path: tensor key}) of a kerasllm training checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    if not reader.has_tensor(_PATHS_KEY):
        raise ValueError(f"{prefix} is not a kerasllm training checkpoint (no model paths).")
    saved = {
        p.decode(): f"model/variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"
        for i, p in enumerate(reader.get_tensor(_PATHS_KEY))
    }
    return reader, saved
