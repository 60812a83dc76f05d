"""In-graph text handling shared by the serving signatures: strings to padded ids, ids to strings.

Everything here is TensorFlow / tensorflow-text ops only, so it runs inside an exported
SavedModel, and it accepts any string: empty, whitespace only, thousands of characters, emoji,
right-to-left scripts, control characters.
"""

from __future__ import annotations

import tensorflow as tf

# Python's whitespace (`str.isspace()`) in RE2: checked equal over every code point.
# `tf.strings.strip` strips ASCII whitespace only.
_SPACE = r"[\t-\r\x1c-\x20\x{85}\p{Z}]"
_SURROUNDING_SPACE = rf"^{_SPACE}+|{_SPACE}+$"


def encode(
    tokenizer,
    text: tf.Tensor,
    max_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
    filler_id: int = 0,
    keep: str = "first",
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Tokenizes a batch of strings into right-padded int32 ids of at most `max_length`.

    Text is truncated in the graph to `max_length` tokens (framing tokens included). A string
    that yields no token gets the single token `filler_id`, so no row is fully masked
    (attention over no key gives NaNs); `is_empty` flags it so the caller can blank its output.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer`.
        text: string (B,).
        max_length: the longest row, framing tokens included.
        first_id, last_id: optional ids put before / after each row's tokens (e.g. cls, sep).
        filler_id: the token given to rows without any.
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
    return frame(tokenizer.tokenize(text), max_length, first_id, last_id, filler_id, keep)


def frame(
    ids: tf.RaggedTensor,
    max_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
    filler_id: int = 0,
    keep: str = "first",
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`encode` for text already tokenized: ragged ids (B, None) to right-padded int32 ids.

    Args and returns as in `encode`.
    """
    body = max_length - (first_id is not None) - (last_id is not None)
    if body < 1:
        raise ValueError(
            f"`max_length` {max_length} leaves no room for text tokens after the framing ids."
        )
    if keep not in ("first", "last"):
        raise ValueError(f"`keep` must be 'first' or 'last'; got {keep!r}.")
    ids = tf.cast(ids, tf.int32)
    lengths = ids.row_lengths()
    if keep == "first":
        ids = ids[:, :body]
    else:
        drop = tf.maximum(lengths - body, 0)
        ids = tf.ragged.boolean_mask(ids, tf.ragged.range(lengths) >= drop[:, None])
    lengths = ids.row_lengths()
    is_empty = lengths == 0
    # One spare column, so that even an all-empty batch has a column for the filler.
    dense = tf.pad(ids.to_tensor(default_value=0), [[0, 0], [0, 1]])
    first_column = tf.range(tf.shape(dense)[1])[None, :] == 0
    dense = tf.where(first_column & is_empty[:, None], filler_id, dense)
    lengths = tf.maximum(lengths, 1)
    # Framing ids go around each row's tokens: shift the tokens right, then write them.
    width = tf.reduce_max(lengths) + (first_id is not None) + (last_id is not None)
    positions = tf.range(width)[None, :]
    offset = 1 if first_id is not None else 0
    dense = tf.pad(dense, [[0, 0], [offset, 1 + (last_id is not None)]])[:, :width]
    if first_id is not None:
        dense = tf.where(positions == 0, first_id, dense)
    total = lengths + offset
    if last_id is not None:
        dense = tf.where(positions == total[:, None], last_id, dense)
        total += 1
    mask = tf.sequence_mask(total, width, dtype=tf.int32)
    return tf.where(mask == 1, dense, 0), mask, is_empty


def decode(
    tokenizer,
    token_ids: tf.Tensor,
    starts: tf.Tensor,
    ends: tf.Tensor,
    is_empty: tf.Tensor | None = None,
    strip: bool = False,
) -> tf.Tensor:
    """Turns the span `[starts[i], ends[i])` of each row of generated ids into clean text.

    Special tokens are dropped, invalid UTF-8 (a byte-level vocabulary can stop inside a
    character) becomes U+FFFD, and rows flagged in `is_empty` give "".

    Args:
        tokenizer: the `kerasllm.tokenizers.Tokenizer` of the generated side.
        token_ids: int32 (B, L).
        starts, ends: int32 (B,) span of each row to keep.
        is_empty: optional bool (B,).
        strip: remove surrounding whitespace, the characters of Python's `str.isspace()`
            (translations, so that they equal `Translator`'s `str.strip()`ped output; a
            continuation keeps its leading space).

    Returns:
        string (B,).
    """
    starts = tf.cast(starts, tf.int64)
    ends = tf.maximum(tf.cast(ends, tf.int64), starts)
    width = tf.cast(tf.shape(token_ids)[1], tf.int64)
    positions = tf.range(width)[None, :]
    keep = (positions >= starts[:, None]) & (positions < ends[:, None])
    ids = tf.ragged.boolean_mask(tf.cast(token_ids, tf.int32), keep)
    text = tokenizer.detokenize(ids, skip_special_tokens=True)
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replace_control_characters=False
    )
    if strip:
        text = tf.strings.regex_replace(text, _SURROUNDING_SPACE, "")
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


def encode_words(
    tokenizer,
    text: tf.Tensor,
    max_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
) -> dict[str, tf.Tensor]:
    """Tokenizes whitespace-separated words the way `token_classification_dataset` does.

    Each word is tokenized on its own (with a leading space for all but a row's first word,
    so byte-level BPE sees running text) and the word's label sits on its first sub-word.
    Words past `max_length` tokens (or that yield no token) are not classified.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer`.
        text: string (B,).
        max_length: the longest row, framing tokens included.
        first_id, last_id: optional framing ids (e.g. cls, sep).

    Returns:
        `{"token_ids", "padding_mask"}` int32 (B, L), `"words"` string (B, W) padded with "",
        `"first_token"` int32 (B, W): each word's first sub-word position, and `"classified"`
        bool (B, W).

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat", "the dog ran"] * 20, vocabulary_size=60)
    >>> out = encode_words(tok, tf.constant(["the cats sat", ""]), 5, tok.cls_id, tok.sep_id)
    >>> out["first_token"].numpy().tolist(), out["classified"].numpy().tolist()
    ([[1, 2, 0], [0, 0, 0]], [[True, True, False], [False, False, False]])
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    words = tf.strings.split(text)  # (B, W) ragged
    column = tf.ragged.range(words.row_lengths()).flat_values
    spaced = tf.where(column > 0, " " + words.flat_values, words.flat_values)
    pieces = tf.cast(tokenizer.tokenize(spaced), tf.int32)  # (all words, pieces)
    counts = tf.cast(pieces.row_lengths(), tf.int32)
    totals = tf.reduce_sum(words.with_flat_values(counts), axis=1)
    ids = tf.RaggedTensor.from_row_lengths(pieces.flat_values, tf.cast(totals, tf.int64))
    token_ids, padding_mask, _ = frame(ids, max_length, first_id, last_id)
    # Each word's first token: its offset in the row (running count of the row's earlier
    # pieces) shifted past the first framing id.
    row_offsets = tf.gather(tf.cumsum(totals, exclusive=True), words.value_rowids())
    starts = tf.cumsum(counts, exclusive=True) - row_offsets
    body = max_length - (first_id is not None) - (last_id is not None)
    classified = (counts > 0) & (starts < body)
    first_token = starts + (1 if first_id is not None else 0)
    return {
        "token_ids": token_ids,
        "padding_mask": padding_mask,
        "words": words.to_tensor(""),
        "first_token": words.with_flat_values(tf.where(classified, first_token, 0)).to_tensor(0),
        "classified": words.with_flat_values(classified).to_tensor(False),
    }
