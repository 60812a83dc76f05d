"""In-graph text handling shared by the serving signatures: strings to padded ids, ids to strings.

Everything here is TensorFlow / tensorflow-text ops only, so it runs inside an exported
SavedModel, and it accepts any string: empty, whitespace only, thousands of characters, emoji,
right-to-left scripts, control characters.
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.preprocessors.generative import ids_to_text
from kerasllm.preprocessors.packing import pack_segments, tokenize_text


def encode(
    tokenizer,
    text: tf.Tensor,
    max_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
    filler_id: int | None = 0,
    keep: str = "first",
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Tokenizes a batch of strings into right-padded int32 ids of at most `max_length`.

    The serving side of `kerasllm.preprocessors`: tokenization (`tokenize_text`, invalid UTF-8
    as U+FFFD) and framing (`pack_segments`) are the preprocessors' own functions, so served
    ids equal the ids `predict` / `generate` and training use. Text is truncated in the graph
    to `max_length` tokens (framing tokens included). A string that yields no token gets the
    single token `filler_id`, so no row is fully masked (attention over no key gives NaNs);
    `is_empty` flags it so the caller can blank its output.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer`.
        text: string (B,).
        max_length: the longest row, framing tokens included.
        first_id, last_id: optional ids put before / after each row's tokens (e.g. cls, sep).
        filler_id: the token given to rows without any (None: none, for framed rows).
        keep: which tokens a too-long text keeps: "first" (inputs to encode) or "last"
            (prompts to continue).

    Returns:
        `(token_ids, padding_mask, is_empty)`: int32 (B, L) with L <= max_length, int32
        (B, L) with 1 on real tokens, bool (B,).

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat", "the dog ran"] * 20, vocabulary_size=60)
    >>> ids, mask, empty = encode(tok, tf.constant(["the cat sat", " "]), max_length=2)
    >>> mask.numpy().tolist(), empty.numpy().tolist()
    ([[1, 1], [1, 0]], [False, True])
    """
    packed = pack_segments(
        [tokenize_text(tokenizer, text)],
        max_length,
        first_id,
        last_id,
        filler_id=filler_id,
        keep=keep,
        return_empty=True,
    )
    return packed["token_ids"], packed["padding_mask"], packed["is_empty"]


def decode(
    tokenizer,
    token_ids: tf.Tensor,
    starts: tf.Tensor,
    ends: tf.Tensor,
    is_empty: tf.Tensor | None = None,
    strip: bool = False,
) -> tf.Tensor:
    """Turns the span `[starts[i], ends[i])` of each row of generated ids into clean text.

    Special tokens are dropped and invalid UTF-8 (a byte-level vocabulary can stop inside a
    character) becomes U+FFFD, by `kerasllm.preprocessors.generative.ids_to_text`, what the
    preprocessors' `generate_postprocess` uses; rows flagged in `is_empty` give "".

    Args:
        tokenizer: the `kerasllm.tokenizers.Tokenizer` of the generated side.
        token_ids: int32 (B, L).
        starts, ends: int32 (B,) span of each row to keep.
        is_empty: optional bool (B,).
        strip: remove surrounding whitespace, the characters of Python's `str.isspace()`
            (translations, so that they equal `TextToText`'s `str.strip()`ped output; a
            continuation keeps its leading space).

    Returns:
        string (B,).
    """
    starts = tf.cast(starts, tf.int64)
    ends = tf.maximum(tf.cast(ends, tf.int64), starts)
    width = tf.cast(tf.shape(token_ids)[1], tf.int64)
    positions = tf.range(width)[None, :]
    keep = (positions >= starts[:, None]) & (positions < ends[:, None])
    text = ids_to_text(tokenizer, token_ids, keep, strip=strip)
    if is_empty is not None:
        text = tf.where(is_empty, tf.constant(""), text)
    return text


def check_token_ids(token_ids: tf.Tensor, padding_mask: tf.Tensor, vocabulary_size: int):
    """Validates client-tokenized inputs in the graph; returns int32 ids and mask.

    Ids outside `[0, vocabulary_size)`, a mask of another shape or a mask that is not
    right-padding (each row's ones first) fail the request with an `InvalidArgumentError`
    that says what is allowed, instead of a wrong result or an opaque gather error.
    """
    token_ids = tf.cast(token_ids, tf.int32)
    padding_mask = tf.cast(padding_mask, tf.int32)
    same_shape = tf.debugging.assert_equal(
        tf.shape(token_ids),
        tf.shape(padding_mask),
        message="`token_ids` and `padding_mask` must have the same shape (batch, length)",
    )
    with tf.control_dependencies([same_shape]):
        lengths = tf.reduce_sum(padding_mask, axis=1)
        right_padded = tf.sequence_mask(lengths, tf.shape(padding_mask)[1], dtype=tf.int32)
    checks = [
        tf.debugging.assert_equal(
            padding_mask,
            right_padded,
            message="`padding_mask` must be 1 on each row's tokens, then 0 (right-padding)",
        ),
        tf.debugging.assert_non_negative(token_ids, message="token ids must be >= 0"),
        tf.debugging.assert_less(
            token_ids,
            tf.constant(vocabulary_size, tf.int32),
            message=f"token ids must be < the vocabulary size {vocabulary_size}",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(token_ids), tf.identity(padding_mask)
