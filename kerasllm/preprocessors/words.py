"""Words to framed sub-word tokens: the one alignment token classification uses everywhere.

`TokenClassifierPreprocessor`, `kerasllm.data.token_classification_dataset` (training) and the
exported tagging signature (`kerasllm.export.TokenClassifierServing`) all call `encode_words`,
so a word's label sits on the same sub-word in training, prediction and serving.

Everything here is TensorFlow ops only: it runs in a `tf.data` map, eagerly, inside
`tf.function` and inside an exported SavedModel.
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.preprocessors.packing import body_length, pack_segments


def is_word_lists(x) -> bool:
    """Whether `x` is a batch of pre-split word lists (a non-empty list of lists / tuples)."""
    return isinstance(x, list) and bool(x) and all(isinstance(row, (list, tuple)) for row in x)


def as_word_lists(x: list, what: str = "x") -> tf.RaggedTensor:
    """A list of word lists (str) as a string ragged tensor (B, None).

    Raises:
        TypeError: a word is not a string.
    """
    for i, row in enumerate(x):
        bad = [w for w in row if not isinstance(w, (str, bytes))]
        if bad:
            raise TypeError(
                f"`{what}[{i}]` must be a list of words (str); found {type(bad[0]).__name__} "
                f"{bad[0]!r:.40}."
            )
    flat = [w for row in x for w in row]
    return tf.RaggedTensor.from_row_lengths(
        tf.constant(flat, tf.string, shape=[len(flat)]),
        tf.constant([len(row) for row in x], tf.int64),
    )


def split_words(text: tf.Tensor) -> tf.RaggedTensor:
    """(B,) strings to (B, None) words: invalid UTF-8 becomes U+FFFD, then the text is split at
    ASCII whitespace (`tf.strings.split`; other spaces, such as U+00A0, stay inside a word)."""
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return tf.strings.split(text)


def encode_words(
    tokenizer,
    words: tf.RaggedTensor,
    sequence_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
    pad_to_sequence_length: bool = False,
) -> dict[str, tf.Tensor]:
    """Tokenizes each row's words and frames them as one segment (`pack_segments`).

    Each word is tokenized on its own, with a space before every word but the row's first, so
    byte-level BPE sees the words as in running text. A word that is blank (only ASCII
    whitespace) or yields no token has no sub-word and is not classified. Rows are framed
    `[first] tokens [last]` and truncated to `sequence_length` tokens exactly as
    `pack_segments` frames one segment (a row without tokens gets one filler token, id 0);
    a word whose first sub-word is cut is not classified.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer`.
        words: string ragged (B, None); invalid UTF-8 becomes U+FFFD.
        sequence_length: the longest row, framing ids included.
        first_id, last_id: framing ids (e.g. cls, sep; None: none).
        pad_to_sequence_length: pad to `sequence_length` rather than to the longest row.

    Returns:
        `{"token_ids", "padding_mask", "segment_ids"}` int32 (B, L) (as `pack_segments`),
        `"first_token"` int32 (B, W): each word's first sub-word position (0 where not
        classified), `"classified"` bool (B, W), both padded with 0 / False to the most words
        of a row, and `"truncated"` bool (B,): the row lost tokens.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat", "the dog ran"] * 20, vocabulary_size=60)
    >>> words = split_words(tf.constant(["the cats sat", ""]))
    >>> out = encode_words(tok, words, 5, tok.cls_id, tok.sep_id)
    >>> out["first_token"].numpy().tolist(), out["classified"].numpy().tolist()
    ([[1, 2, 0], [0, 0, 0]], [[True, True, False], [False, False, False]])
    """
    body = body_length(sequence_length, 1, first_id, last_id)
    words = tf.strings.unicode_transcode(
        words, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    flat = words.flat_values
    column = tf.ragged.range(words.row_lengths()).flat_values
    pieces = tokenizer.tokenize(tf.where(column > 0, " " + flat, flat))
    blank = tf.strings.length(tf.strings.strip(flat)) == 0
    # A blank word counts no token (byte-level BPE would give its spaces tokens): the same
    # words are kept whether a text is split here or a caller passes pre-split words.
    keep = tf.repeat(~blank, pieces.row_lengths())
    counts = tf.where(blank, tf.zeros_like(pieces.row_lengths()), pieces.row_lengths())
    totals = tf.reduce_sum(words.with_flat_values(counts), axis=1)
    ids = tf.RaggedTensor.from_row_lengths(
        tf.cast(tf.boolean_mask(pieces.flat_values, keep), tf.int32), totals
    )
    inputs = pack_segments(
        [ids],
        sequence_length,
        first_id,
        last_id,
        pad_to_sequence_length=pad_to_sequence_length,
    )
    # Each word's first sub-word: its offset in the row (running count of the row's earlier
    # sub-words), shifted past the first framing id.
    row_offsets = tf.gather(tf.cumsum(totals, exclusive=True), words.value_rowids())
    starts = tf.cumsum(counts, exclusive=True) - row_offsets
    classified = (counts > 0) & (starts < body)
    first_token = tf.cast(starts, tf.int32) + (1 if first_id is not None else 0)
    return {
        **inputs,
        "first_token": words.with_flat_values(tf.where(classified, first_token, 0)).to_tensor(0),
        "classified": words.with_flat_values(classified).to_tensor(False),
        "truncated": totals > body,
    }


def word_values_on_tokens(
    values: tf.RaggedTensor, encoded: dict[str, tf.Tensor], default=0
) -> tf.Tensor:
    """Puts one value per word (labels, weights) on the word's first sub-word.

    Args:
        values: ragged (B, None) (or dense (B, W)) with one value per word of `encoded`'s rows.
        encoded: the output of `encode_words` for those words.
        default: the value everywhere else (other sub-words, framing, padding, words that are
            not classified).

    Returns:
        (B, L) of `values`' dtype, laid out like `encoded["token_ids"]`.
    """
    if not isinstance(values, tf.RaggedTensor):
        values = tf.RaggedTensor.from_tensor(values)
    # Same row lengths as the words (callers check it), so the same (B, W) as `classified`.
    dense = values.to_tensor(default_value=tf.cast(default, values.dtype))
    classified = encoded["classified"]
    rows = tf.where(classified)[:, 0]
    columns = tf.cast(tf.boolean_mask(encoded["first_token"], classified), tf.int64)
    shape = tf.shape(encoded["token_ids"], out_type=tf.int64)
    base = tf.fill(shape, tf.cast(default, values.dtype))
    return tf.tensor_scatter_nd_update(
        base, tf.stack([rows, columns], axis=1), tf.boolean_mask(dense, classified)
    )
