"""`TokenClassifierPreprocessor`: texts or word lists (and per-word labels) to `TokenClassifier`
inputs."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kerasllm.preprocessors.packing import body_length, boundary_ids
from kerasllm.preprocessors.preprocessor import Preprocessor, as_strings
from kerasllm.preprocessors.words import (
    as_word_lists,
    encode_words,
    is_word_lists,
    split_words,
    word_values_on_tokens,
)


@keras.saving.register_keras_serializable(package="kerasllm")
class TokenClassifierPreprocessor(Preprocessor):
    """Frames words for token classification (NER, tagging): `[cls] sub-words [sep]`, one label
    per word on the word's first sub-word.

    `x` is a batch of texts (a list, numpy array or `tf.string` tensor, or one string), split
    into words at ASCII whitespace, or a batch of pre-split word lists (a list of lists of str
    or a string `tf.RaggedTensor` (B, None)). `y` holds one int label per word (a list of
    lists, a ragged tensor, or a (B, W) array when every text has W words). Each word is
    tokenized on its own (with a leading space for all but the first word, so byte-level BPE
    sees running text); its label sits on its first sub-word with `sample_weight` 1, and every
    other position (other sub-words, `[cls]`/`[sep]`, padding, words that yield no token or
    lie past `sequence_length` tokens) gets label 0 and weight 0, as
    `kerasllm.data.token_classification_dataset` lays them out in training (the same function,
    `kerasllm.preprocessors.words.encode_words`, frames both, and the exported tagging
    signature). A `sample_weight` of one value per text scales its words' weights; one value per
    word replaces the 1s.

    Returns `keras.utils.pack_x_y_sample_weight(x, labels, sample_weight)` with
    `x = {"token_ids", "padding_mask", "segment_ids"}` int32 (B, L), labels int32 (B, L) and
    sample weights float32 (B, L) (weights only when `y` is given); a scalar string gives 1-D
    outputs (an unbatched `tf.data` element). A batch is padded to its longest row unless
    `pad_to_sequence_length=True`.

    `TokenClassifier.predict` on texts returns one row of logits per **word**, float32
    (B, W, num_classes) with W = `sequence_length` minus the framing tokens (the most words
    that fit); NaN marks positions without a classified word (after a text's last word, a
    word that yields no token, words cut by `sequence_length`).

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["John lives in Paris"] * 10, vocabulary_size=60)
    >>> pre = TokenClassifierPreprocessor(tok, sequence_length=16)
    >>> x, y, w = pre(["John lives in Paris"], [[1, 0, 0, 2]])
    >>> x["token_ids"].shape, y.numpy()[0].tolist()[:3], w.numpy()[0].tolist()[:3]
    (TensorShape([1, 6]), [0, 1, 0], [0.0, 1.0, 1.0])
    """

    # ------------------------------------------------------------------ words
    def encode(self, x) -> dict[str, tf.Tensor]:
        """The full word alignment of a batch `x` (texts or word lists, see the class doc):
        `encode_words`' outputs plus `"words"`, string (B, W) padded with "" (texts are split
        at ASCII whitespace). The exported tagging signature serves from it."""
        words, encoded = self._encode(x)
        return {**encoded, "words": words.to_tensor("")}

    def _encode(self, x) -> tuple[tf.RaggedTensor, dict[str, tf.Tensor]]:
        tokenizer = self._require_tokenizer()
        words = self.words(x)
        encoded = encode_words(
            tokenizer,
            words,
            self.sequence_length,
            *boundary_ids(tokenizer),
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        return words, encoded

    @staticmethod
    def words(x) -> tf.RaggedTensor:
        """`x` (a batch of texts or of word lists, or one text) as a string ragged tensor
        (B, None) of words.

        Raises:
            TypeError: `x` holds something other than strings or lists of strings.
        """
        if isinstance(x, tf.RaggedTensor):
            if x.dtype != tf.string or x.shape.rank != 2:
                raise TypeError(
                    "`x` as a ragged tensor must be string word lists (B, None); received "
                    f"{x.dtype.name} {x.shape}."
                )
            return x
        if is_word_lists(x):
            return as_word_lists(x)
        texts = as_strings(x, "x")
        return split_words(texts if texts.shape.rank != 0 else texts[None])

    # ------------------------------------------------------------------ call
    def call(self, x, y=None, sample_weight=None):
        scalar = isinstance(x, (str, bytes)) or (
            isinstance(x, tf.Tensor) and x.dtype == tf.string and x.shape.rank == 0
        )
        words, encoded = self._encode(x)
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        if y is not None:
            counts = words.row_lengths()
            labels = _per_word(y, "y", counts, tf.int32, scalar)
            labels = _checked(
                labels,
                tf.reduce_all(labels.flat_values >= 0),
                "`y` must hold non-negative class ids (one per word).",
            )
            if sample_weight is None:
                weights = tf.ones_like(labels, tf.float32)
            elif _per_text(sample_weight, scalar):
                weights = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
                weights = tf.RaggedTensor.from_row_lengths(tf.repeat(weights, counts), counts)
            else:
                weights = _per_word(sample_weight, "sample_weight", counts, tf.float32, scalar)
            y = word_values_on_tokens(labels, encoded)
            sample_weight = word_values_on_tokens(weights, encoded)
        elif sample_weight is not None:
            raise ValueError("`sample_weight` needs labels `y` (one per word).")
        if scalar:
            inputs = {key: value[0] for key, value in inputs.items()}
            if y is not None:
                y, sample_weight = y[0], sample_weight[0]
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)

    # ------------------------------------------------------------------ predict hooks
    def predict_inputs(self, x) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """What `Task.predict` feeds the model for texts `x`, and what turns its per-token outputs
        into per-word outputs (`predict_outputs`): `(inputs, first_token)`, first_token int32
        (B, W) with -1 where no word is classified.

        W is fixed, `sequence_length` minus the framing tokens (at most that many words fit),
        so that Keras can concatenate the batches (and XLA sees static word columns); words
        past it, possible only after words that yield no token, are not classified.
        """
        _, encoded = self._encode(x)
        width = body_length(self.sequence_length, 1, *boundary_ids(self._require_tokenizer()))
        first_token = tf.where(encoded["classified"], encoded["first_token"], -1)[:, :width]
        spare = width - tf.shape(first_token)[1]
        first_token = tf.pad(first_token, [[0, 0], [0, spare]], constant_values=-1)
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        return inputs, first_token

    @staticmethod
    def predict_outputs(logits, first_token) -> tf.Tensor:
        """Per-token logits (B, L, C) to per-word logits (B, W, C): each word's first
        sub-word's, NaN where `first_token` is -1 (no classified word)."""
        found = first_token >= 0
        gathered = tf.gather(logits, tf.maximum(first_token, 0), batch_dims=1)
        return tf.where(found[..., None], gathered, tf.constant(float("nan"), gathered.dtype))


def _nested(values) -> bool:
    return any(isinstance(v, (list, tuple, np.ndarray, tf.Tensor)) for v in values)


def _per_text(sample_weight, scalar: bool) -> bool:
    """Whether `sample_weight` holds one weight per text (else one per word)."""
    if isinstance(sample_weight, tf.RaggedTensor):
        return False
    if isinstance(sample_weight, (list, tuple)) and sample_weight and _nested(sample_weight):
        return False
    rank = (
        sample_weight.shape.rank if isinstance(sample_weight, tf.Tensor) else np.ndim(sample_weight)
    )
    return rank == (0 if scalar else 1)


def _per_word(
    values, what: str, counts: tf.Tensor, dtype: tf.DType, scalar: bool
) -> tf.RaggedTensor:
    """`values` (ragged, list of lists or dense) as ragged (B, None) of `dtype`, checked to hold
    one value per word (`counts`: the words of each row)."""
    if isinstance(values, tf.RaggedTensor):
        ragged = values
    elif isinstance(values, (list, tuple)) and not scalar and _nested(values):
        ragged = tf.ragged.constant([np.asarray(v).tolist() for v in values], dtype=dtype)
    else:
        dense = tf.convert_to_tensor(values)
        ragged = tf.RaggedTensor.from_tensor(dense[None] if scalar else dense)
    if ragged.shape.rank != 2:
        raise ValueError(
            f"`{what}` must hold one value per word of each text (B, words); received shape "
            f"{ragged.shape}."
        )
    if not (ragged.dtype.is_integer or ragged.dtype.is_floating or ragged.dtype == tf.bool):
        raise TypeError(f"`{what}` must be numbers; received {ragged.dtype.name}.")
    ragged = tf.cast(ragged, dtype)
    lengths = ragged.row_lengths()
    same = tf.cond(
        tf.equal(tf.size(counts, tf.int64), tf.size(lengths, tf.int64)),
        lambda: tf.reduce_all(tf.equal(tf.cast(counts, tf.int64), lengths)),
        lambda: tf.constant(False),
    )
    return _checked(
        ragged,
        same,
        f"`{what}` must hold one value per word of each text (as many as `x` has words).",
    )


def _checked(value, condition: tf.Tensor, message: str):
    """`value`, once `condition` holds: raises ValueError(message) eagerly; in a graph the
    result depends on an assertion (InvalidArgumentError with `message`)."""
    if tf.executing_eagerly():
        if not bool(condition):
            raise ValueError(message)
        return value
    with tf.control_dependencies([tf.debugging.Assert(condition, [message])]):
        return tf.nest.map_structure(tf.identity, value, expand_composites=True)
