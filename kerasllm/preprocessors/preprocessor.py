"""`Preprocessor`: the base of the per-task preprocessors (strings in, model inputs out)."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasllm import _compat
from kerasllm.preprocessors.packing import tokenize_text

#: The sub-folder of a layer's assets folder that holds its tokenizer in a `.keras` file.
TOKENIZER_ASSETS = "tokenizer"


def as_strings(texts: Any, what: str = "texts") -> tf.Tensor:
    """`texts` (a string, a list / numpy array of strings, a `tf.string` tensor) as a tf.string
    tensor of rank 0 or 1.

    Raises:
        TypeError: `texts` holds something other than strings (numbers, None).
        ValueError: `texts` has rank 2 or more.
    """
    if isinstance(texts, (str, bytes)):
        return tf.constant(texts, tf.string)
    if isinstance(texts, (list, np.ndarray)):
        items = list(np.asarray(texts, dtype=object).reshape(-1)) if len(texts) else []
        bad = [t for t in items if not isinstance(t, (str, bytes))]
        if bad or (isinstance(texts, np.ndarray) and texts.ndim != 1):
            found = f"{type(bad[0]).__name__} {bad[0]!r:.40}" if bad else f"shape {texts.shape}"
            raise TypeError(
                f"`{what}` must be strings (a list or 1-D array of str); found {found}."
            )
        return tf.constant(items, tf.string, shape=[len(items)])
    texts = tf.convert_to_tensor(texts) if not isinstance(texts, tf.Tensor) else texts
    if texts.dtype != tf.string:
        raise TypeError(f"`{what}` must be strings; received a {texts.dtype.name} tensor.")
    if texts.shape.rank not in (0, 1, None):
        raise ValueError(
            f"`{what}` must be a string or a 1-D batch of strings; received shape {texts.shape}."
        )
    return texts


def as_text_batch(texts: Any, what: str = "texts") -> tuple[tf.Tensor, bool]:
    """`texts` as a 1-D batch of strings (see `as_strings`), and whether it was one string:
    pass that flag to `unbatch_if` so a single text gets unbatched outputs (a `tf.data` element).
    """
    texts = as_strings(texts, what)
    scalar = texts.shape.rank == 0
    return (texts[None] if scalar else texts), scalar


def unbatch_if(scalar: bool, outputs: Any) -> Any:
    """The first row of every tensor in `outputs` (a nest: dict, tuple, None) when `scalar`."""
    return tf.nest.map_structure(lambda t: t[0], outputs) if scalar else outputs


@keras.saving.register_keras_serializable(package="kerasllm")
class Preprocessor(keras.layers.Layer):
    """Base class of the task preprocessors: a Keras layer that owns a kerasllm tokenizer.

    A preprocessor turns raw strings into the input dict of a task model (framing, truncation,
    padding) and passes labels through: `preprocessor(x, y=None, sample_weight=None)` returns
    `keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)`, so it maps directly over a
    `tf.data.Dataset` of `(text, label)` batches. Its work is TensorFlow ops only: it runs as a
    `tf.data` map, eagerly, inside `tf.function` and inside an exported SavedModel.

    It serializes like any layer: `get_config` holds its options, and the tokenizer travels as
    assets (`save_assets` / `load_assets`, which Keras calls when a model holding the
    preprocessor is saved to / loaded from a `.keras` file).

    Subclasses implement `call(x, y=None, sample_weight=None)`.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer` (None only while a saved model is being
            loaded; `load_assets` sets it).
        sequence_length: the longest model input, framing tokens included.
        pad_to_sequence_length: pad every batch to `sequence_length` (static shapes, for XLA);
            by default a batch is padded to its longest row, which costs less compute.
    """

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 128,
        pad_to_sequence_length: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pad_to_sequence_length = bool(pad_to_sequence_length)
        # Strings are not backend tensors: keep inputs as they come (as KerasHub's
        # preprocessing layers do).
        _compat.accept_raw_python_inputs(self)
        if not isinstance(sequence_length, int) or isinstance(sequence_length, bool):
            raise TypeError(f"`sequence_length` must be an int; got {sequence_length!r}.")
        if sequence_length < 1:
            raise ValueError(f"`sequence_length` must be positive; got {sequence_length}.")
        self.sequence_length = sequence_length
        self.tokenizer = tokenizer
        self.built = True

    @property
    def tokenizer(self):
        """The `kerasllm.tokenizers.Tokenizer` this preprocessor tokenizes with."""
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        if tokenizer is not None and not (
            callable(getattr(tokenizer, "tokenize", None)) and hasattr(tokenizer, "save")
        ):
            raise TypeError(
                "`tokenizer` must be a kerasllm tokenizer (kerasllm.tokenizers.Tokenizer, "
                f"e.g. kerasllm.zoo.get_tokenizer(name)); got {type(tokenizer).__name__}."
            )
        self._tokenizer = tokenizer

    def _require_tokenizer(self):
        if self._tokenizer is None:
            raise ValueError(
                f"{type(self).__name__} has no tokenizer: pass `tokenizer=` when building it "
                "(a model loaded from a .keras file gets it back from the file's assets)."
            )
        return self._tokenizer

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Tokenizes a 1-D batch of strings to ragged int32 ids (B, None).

        Invalid UTF-8 becomes U+FFFD first, as `kerasllm.data` pipelines do in training and
        the exported signatures do in serving (`packing.tokenize_text`, which all three use).
        """
        return tokenize_text(self._require_tokenizer(), texts)

    def call(self, x, y=None, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__} must implement `call`.")

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "pad_to_sequence_length": self.pad_to_sequence_length,
        }

    # Keras calls these hooks when saving / loading a `.keras` file (its `assets/` folder).
    def save_assets(self, dir_path: str) -> None:
        if self._tokenizer is not None:
            self._tokenizer.save(os.path.join(dir_path, TOKENIZER_ASSETS))

    def load_assets(self, dir_path: str) -> None:
        from kerasllm import tokenizers

        folder = os.path.join(dir_path, TOKENIZER_ASSETS)
        if os.path.isdir(folder):
            self.tokenizer = tokenizers.load(folder)
