"""`MaskedLMPreprocessor`: texts to `MaskedLM` batches (framing, truncation, BERT masking), and
`mask_tokens`, the masking that `kerasllm.data.masked_lm_dataset` uses too."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasllm.preprocessors.packing import boundary_ids, pack_segments
from kerasllm.preprocessors.preprocessor import Preprocessor, as_text_batch, unbatch_if

_INT = tf.int32


def mask_tokens(
    token_ids: tf.Tensor,
    seed: tf.Tensor,
    mask_id: int,
    vocabulary_size: int,
    special_ids: Sequence[int],
    max_predictions: int,
    mask_rate: float = 0.15,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
    word_starts: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """BERT dynamic masking of a padded batch with stateless (seeded) randomness.

    Per row, `round(mask_rate * candidates)` tokens are selected (at least one, at most
    `max_predictions`), where candidates exclude padding and special tokens. Selected
    tokens become `mask_id` with probability `mask_token_rate`, a random non-special
    token with probability `random_token_rate`, and stay unchanged otherwise. With
    `word_starts` (a bool lookup over the vocabulary), whole words are selected.

    Args:
        token_ids: int (B, T) padded ids.
        seed: int (2,) stateless seed.
        mask_id: id of the mask token.
        vocabulary_size: size of the vocabulary (random replacements are drawn from the
            ids that are not special).
        special_ids: ids never selected (pad included).
        max_predictions: P, the width of `mask_positions`.
        mask_rate: fraction of candidate tokens to predict.
        mask_token_rate: fraction of selected tokens replaced by `mask_id`.
        random_token_rate: fraction of selected tokens replaced by a random token.
        word_starts: optional bool (V,) tensor for whole-word masking.

    Returns:
        dict with `token_ids` (masked, (B, T)), `mask_positions` (B, P), `mask_ids`
        (B, P) original ids and `mask_weights` (B, P) float32.
    """
    token_ids = tf.cast(token_ids, _INT)
    shape = tf.shape(token_ids)
    batch, length = shape[0], shape[1]
    special = tf.constant(sorted(set(special_ids)), _INT)
    is_candidate = tf.reduce_all(token_ids[..., None] != special, axis=-1)
    positions = tf.broadcast_to(tf.range(length)[None, :], shape)
    if word_starts is not None:
        starts = tf.gather(word_starts, token_ids) | ~is_candidate
        starts = starts | tf.equal(positions, 0)
    else:
        starts = tf.ones_like(is_candidate)
    word_index = tf.cumsum(tf.cast(starts, _INT), axis=1) - 1  # word id of each token
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    word_score = tf.random.stateless_uniform(shape, seeds[0])  # one score per word slot
    score = tf.gather(word_score, word_index, batch_dims=1)
    score = tf.where(is_candidate, score, 2.0)
    order = tf.argsort(score, axis=1, stable=True)
    sorted_candidate = tf.gather(is_candidate, order, batch_dims=1)
    rank_count = tf.cumsum(tf.cast(sorted_candidate, _INT), axis=1)  # tokens taken so far
    # Count of tokens taken once each word is complete (max over the word's tokens).
    sorted_word = tf.gather(word_index, order, batch_dims=1)
    flat_word = sorted_word + length * tf.range(batch)[:, None]
    word_total = tf.math.unsorted_segment_max(
        tf.reshape(rank_count, [-1]), tf.reshape(flat_word, [-1]), batch * length
    )
    word_end = tf.reshape(tf.gather(word_total, tf.reshape(flat_word, [-1])), shape)
    n_candidates = tf.reduce_sum(tf.cast(is_candidate, tf.float32), axis=1)
    target = tf.cast(tf.round(mask_rate * n_candidates), _INT)
    first_word = tf.reduce_min(tf.where(sorted_candidate, word_end, length + 1), axis=1)
    limit = tf.minimum(tf.maximum(target, first_word), max_predictions)
    limit = tf.where(n_candidates > 0, limit, 0)
    sorted_selected = sorted_candidate & (word_end <= limit[:, None])
    selected = tf.scatter_nd(
        tf.stack([tf.broadcast_to(tf.range(batch)[:, None], shape), order], axis=-1),
        tf.cast(sorted_selected, _INT),
        shape,
    )
    selected = tf.cast(selected, tf.bool)
    # 80/10/10 replacement.
    draw = tf.random.stateless_uniform(shape, seeds[1])
    low = max(special_ids) + 1 if max(special_ids) + 1 < vocabulary_size else 0
    random_ids = tf.random.stateless_uniform(
        shape, seeds[2], minval=low, maxval=vocabulary_size, dtype=_INT
    )
    replaced = tf.where(draw < mask_token_rate, mask_id, token_ids)
    replaced = tf.where(
        (draw >= mask_token_rate) & (draw < mask_token_rate + random_token_rate),
        random_ids,
        replaced,
    )
    masked = tf.where(selected, replaced, token_ids)
    sel_positions = tf.ragged.boolean_mask(positions, selected)
    mask_positions = sel_positions.to_tensor(0, shape=[None, max_predictions])
    weights = tf.ones_like(sel_positions, tf.float32).to_tensor(0.0, shape=[None, max_predictions])
    mask_ids = tf.ragged.boolean_mask(token_ids, selected).to_tensor(
        0, shape=[None, max_predictions]
    )
    return {
        "token_ids": masked,
        "mask_positions": mask_positions,
        "mask_ids": mask_ids,
        "mask_weights": weights,
    }


def default_max_predictions(mask_rate: float, sequence_length: int) -> int:
    """The width P of `mask_positions` when none is given: `ceil(1.25 * mask_rate * T)`."""
    return max(1, math.ceil(1.25 * mask_rate * sequence_length))


def masked_lm_batch(
    token_ids: tf.Tensor,
    padding_mask: tf.Tensor,
    seed: tf.Tensor,
    tokenizer,
    max_predictions: int,
    mask_rate: float = 0.15,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
    word_starts: tf.Tensor | None = None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """A masked-LM batch `(x, y, sample_weight)` from framed, padded ids (see `mask_tokens`):
    what `MaskedLMPreprocessor` returns and `kerasllm.data.masked_lm_dataset` yields.

    Returns:
        `x = {"token_ids" (masked), "padding_mask", "segment_ids" (zeros), "mask_positions"}`,
        `y` the original ids at the masked positions (B, P), `sample_weight` (B, P) float32, 0
        on unused slots.
    """
    masked = mask_tokens(
        token_ids,
        seed,
        tokenizer.mask_id,
        tokenizer.vocabulary_size,
        sorted(set(tokenizer.special_token_ids.values())),
        max_predictions,
        mask_rate=mask_rate,
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
        word_starts=word_starts,
    )
    inputs = {
        "token_ids": masked["token_ids"],
        "padding_mask": tf.cast(padding_mask, _INT),
        "segment_ids": tf.zeros_like(masked["token_ids"]),
        "mask_positions": masked["mask_positions"],
    }
    return inputs, masked["mask_ids"], masked["mask_weights"]


def check_masking(tokenizer, mask_rate: float) -> None:
    """Raises ValueError for a tokenizer without a mask token or a `mask_rate` outside (0, 1)."""
    if tokenizer.mask_id is None:
        raise ValueError("Masked LM needs a tokenizer with a mask token.")
    if not 0.0 < mask_rate < 1.0:
        raise ValueError(f"`mask_rate` must be in (0, 1). Received: {mask_rate}")


@keras.saving.register_keras_serializable(package="kerasllm")
class MaskedLMPreprocessor(Preprocessor):
    """Frames and masks texts for masked-LM training (BERT's objective).

    Each text is framed as `[cls] tokens [sep]` (start/end for tokenizers without cls/sep) and
    truncated to `sequence_length`, exactly as `kerasllm.data.masked_lm_dataset` does; then
    `mask_rate` of the non-special tokens are selected (whole words with
    `whole_word_masking`): 80% become the mask token, 10% a random token, 10% stay. Returns
    `(x, y, sample_weight)`: `x = {"token_ids", "padding_mask", "segment_ids",
    "mask_positions"}`, `y` the original ids at the masked positions (B, P) and
    `sample_weight` (B, P), 0 on unused slots. Labels come from the texts: `y` is refused.

    Masks are drawn with stateless randomness from a seed: `preprocessor(texts, seed=s)` with
    an int or a shape-(2,) int tensor `s` masks reproducibly (`seed=[base, i]` masks batch `i`
    exactly as `masked_lm_dataset(..., seed=base)` does, when padded to the same width);
    without one, each call draws a fresh seed (from the layer's `seed` when set, so a run is
    reproducible), giving fresh masks every epoch.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer` with a mask token.
        sequence_length: the longest row T, framing tokens included.
        mask_rate: fraction of the candidate tokens to predict, in (0, 1).
        max_predictions: width P of `mask_positions`; default `ceil(1.25 * mask_rate * T)`.
        whole_word_masking: mask all pieces of a selected word together.
        mask_token_rate, random_token_rate: fractions of the selected tokens replaced by the
            mask token / a random token.
        seed: seed of the masks drawn when a call passes none.
        pad_to_sequence_length: pad every batch to `sequence_length` (static shapes, and the
            masks `masked_lm_dataset` draws without bucketing).

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat on the mat"] * 20, vocabulary_size=60)
    >>> pre = MaskedLMPreprocessor(tok, sequence_length=12, mask_rate=0.3)
    >>> x, y, w = pre(["the cat sat on the mat"], seed=1)
    >>> x["mask_positions"].shape, y.shape, int(w.numpy().sum())
    (TensorShape([1, 5]), TensorShape([1, 5]), 2)
    """

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 128,
        mask_rate: float = 0.15,
        max_predictions: int | None = None,
        whole_word_masking: bool = False,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
        seed: int | None = None,
        pad_to_sequence_length: bool = False,
        **kwargs,
    ):
        super().__init__(tokenizer, sequence_length, pad_to_sequence_length, **kwargs)
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"`mask_rate` must be in (0, 1). Received: {mask_rate}")
        if min(mask_token_rate, random_token_rate) < 0 or mask_token_rate + random_token_rate > 1:
            raise ValueError(
                "`mask_token_rate` and `random_token_rate` must be >= 0 with a sum <= 1; got "
                f"{mask_token_rate} and {random_token_rate}."
            )
        if max_predictions is None:
            max_predictions = default_max_predictions(mask_rate, sequence_length)
        if not isinstance(max_predictions, int) or max_predictions < 1:
            raise ValueError(f"`max_predictions` must be a positive int; got {max_predictions!r}.")
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or None; got {seed!r}.")
        self.mask_rate = float(mask_rate)
        self.max_predictions = max_predictions
        self.whole_word_masking = bool(whole_word_masking)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        self.seed = seed
        if tokenizer is not None:
            check_masking(tokenizer, self.mask_rate)

    def _seed(self, seed: Any) -> tf.Tensor:
        if seed is None:
            # A stateful draw: fresh masks at every call (every batch of a `tf.data` map);
            # with the layer's `seed` the sequence of draws is reproducible.
            return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64, seed=self.seed)
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return tf.constant([int(seed), 0], tf.int64)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        if seed.shape.rank != 1 or seed.shape[0] not in (2, None):
            raise ValueError(f"`seed` must be an int or a shape-(2,) int tensor; got {seed!r}.")
        return seed

    def call(self, x, y=None, sample_weight=None, seed=None):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "MaskedLMPreprocessor takes texts only: its labels are the masked tokens. Pass "
                "`x` alone (fit(texts))."
            )
        texts, scalar = as_text_batch(x, "x")
        tokenizer = self._require_tokenizer()
        check_masking(tokenizer, self.mask_rate)
        first, last = boundary_ids(tokenizer)
        packed = pack_segments(
            [self.tokenize(texts)],
            self.sequence_length,
            first,
            last,
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        word_starts = None
        if self.whole_word_masking:
            word_starts = tf.constant(tokenizer.word_start_flags())
        inputs, labels, weights = masked_lm_batch(
            packed["token_ids"],
            packed["padding_mask"],
            self._seed(seed),
            tokenizer,
            self.max_predictions,
            mask_rate=self.mask_rate,
            mask_token_rate=self.mask_token_rate,
            random_token_rate=self.random_token_rate,
            word_starts=word_starts,
        )
        return keras.utils.pack_x_y_sample_weight(*unbatch_if(scalar, (inputs, labels, weights)))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "mask_rate": self.mask_rate,
            "max_predictions": self.max_predictions,
            "whole_word_masking": self.whole_word_masking,
            "mask_token_rate": self.mask_token_rate,
            "random_token_rate": self.random_token_rate,
            "seed": self.seed,
        }
