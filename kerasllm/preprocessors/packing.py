"""Framing and truncation of tokenized segments: the one place that lays out model inputs.

Everything here is TensorFlow / tensorflow-text ops (no `py_function`), so it runs in a
`tf.data` map, eagerly, inside `tf.function` and inside an exported SavedModel.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_text as tf_text

TRUNCATIONS = ("round_robin", "waterfall")


def boundary_ids(tokenizer) -> tuple[int | None, int | None]:
    """Ids that frame a sequence: cls/sep when the tokenizer defines them, else start/end.

    The one rule for encoder inputs: the preprocessors, the `kerasllm.data` pipelines (which
    re-export it) and the exported signatures use it.
    """
    first = tokenizer.cls_id if tokenizer.cls_id is not None else tokenizer.start_id
    last = tokenizer.sep_id if tokenizer.sep_id is not None else tokenizer.end_id
    return first, last


def framing_ids(
    tokenizer, start_token: bool, end_token: bool, argument: str = "source"
) -> tuple[int | None, int | None]:
    """The ids a family frames a source with, for `pack_segments`' `first_id` / `last_id`:
    `boundary_ids`' first id (cls, else start) when `start_token`, its last id (sep, else end)
    when `end_token`, None otherwise.

    Hugging Face tokenizers frame each family's sources their own way (T5 `text </s>`, BART
    `<s> text </s>`, i.e. its cls and sep); the seq2seq preprocessor, the `kerasllm.data`
    pipeline and the exported signatures all take the ids from here.

    Raises:
        ValueError: a requested token the tokenizer does not have.

    Example:
    >>> class Tok: cls_id, sep_id, start_id, end_id = None, None, 1, 2
    >>> framing_ids(Tok, False, True)
    (None, 2)
    """
    first, last = boundary_ids(tokenizer)
    first = first if start_token else None
    last = last if end_token else None
    for wanted, value, name in ((start_token, first, "start"), (end_token, last, "end")):
        if wanted and value is None:
            raise ValueError(
                f"`{argument}_{name}_token=True` needs a tokenizer with a {name} token; this "
                "one has none."
            )
    return first, last


def check_truncate(truncate: str) -> str:
    if truncate not in TRUNCATIONS:
        raise ValueError(f"`truncate` must be one of {list(TRUNCATIONS)}; got {truncate!r}.")
    return truncate


def body_length(
    sequence_length: int, num_segments: int, first_id: int | None, last_id: int | None
) -> int:
    """How many text tokens fit in `sequence_length` once the framing ids are placed.

    Raises:
        ValueError: the framing ids alone fill `sequence_length`.
    """
    body = sequence_length - (first_id is not None) - num_segments * (last_id is not None)
    if body < 1:
        raise ValueError(
            f"`sequence_length` {sequence_length} leaves no room for text tokens after the "
            f"framing ids of {num_segments} segment(s)."
        )
    return body


KEEPS = ("first", "last")


def check_keep(keep: str) -> str:
    if keep not in KEEPS:
        raise ValueError(f"`keep` must be one of {list(KEEPS)}; got {keep!r}.")
    return keep


def tokenize_text(tokenizer, texts: tf.Tensor) -> tf.RaggedTensor:
    """Tokenizes a 1-D batch of strings to ragged int32 ids (B, None), the step before framing.

    Invalid UTF-8 becomes U+FFFD first, as `kerasllm.data` pipelines do in training, so that
    training, preprocessors and exported signatures see the same text (a tokenizer given
    invalid UTF-8 may fail, or split the bad bytes its own way).
    """
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return tf.cast(tokenizer.tokenize(texts), tf.int32)


def pack_segments(
    segments: Sequence[tf.RaggedTensor | tf.Tensor],
    sequence_length: int,
    first_id: int | None = None,
    last_id: int | None = None,
    truncate: str = "round_robin",
    filler_id: int | None = 0,
    pad_to_sequence_length: bool = False,
    keep: str = "first",
    return_empty: bool = False,
) -> dict[str, tf.Tensor]:
    """Frames one or more tokenized segments as `[first] a [last] b [last] ...` and pads them.

    This is the one framing function of the project: the preprocessors, the `kerasllm.data`
    pipelines (one example at a time) and the exported signatures (`kerasllm.export.text`)
    all frame through it, so training, `predict`/`generate` and serving agree.

    Text tokens are truncated so that each row, framing ids included, has at most
    `sequence_length` tokens: one segment keeps its first tokens (or its last ones with
    `keep="last"`, for prompts to continue); several segments are trimmed by `truncate`
    ("round_robin": one token from each segment in turn, so the longer side loses tokens
    first; "waterfall": the first segments keep theirs, the last ones are cut first), as
    tensorflow-text's trimmers (and KerasHub's `MultiSegmentPacker`) do.

    A row with no text token at all gets the single token `filler_id` as its first segment,
    so that no row is fully masked (attention over no key gives NaNs); `filler_id=None` leaves
    such rows with their framing ids only (for sequences that always have one, such as a
    decoder input that starts with the start id).

    Args:
        segments: int ragged tensors (B, None), one per segment; or, for one example, dense
            1-D int tensors (None,), and then every output is 1-D (unpadded) too.
        sequence_length: the longest row, framing ids included.
        first_id, last_id: ids before the first segment and after each segment (None: none).
        truncate: "round_robin" or "waterfall" (only matters for several segments).
        filler_id: the token given to rows without any text token (None: no filler).
        pad_to_sequence_length: pad every batch to `sequence_length` (static shapes, for XLA);
            by default a batch is padded to its longest row, which costs less compute.
        keep: which tokens a too-long single segment keeps: "first" or "last".
        return_empty: also return `"is_empty"`, bool (B,): the rows without any text token
            (so that a caller can blank what it computes for them).

    Returns:
        `{"token_ids", "padding_mask", "segment_ids"}`, int32 (B, L) with L <= sequence_length
        (L == sequence_length with `pad_to_sequence_length`); padding is 0 everywhere. An
        empty batch gets one (padding) column.

    Raises:
        ValueError: no segment, an unknown `truncate` or `keep`, `keep="last"` with several
            segments, or a `sequence_length` that leaves no room for text tokens.

    Example:
    >>> ids = tf.ragged.constant([[5, 6, 7, 8], []])
    >>> out = pack_segments([ids], 4, first_id=1, last_id=2, return_empty=True)
    >>> out["token_ids"].numpy().tolist(), out["is_empty"].numpy().tolist()
    ([[1, 5, 6, 2], [1, 0, 2, 0]], [False, True])
    >>> pack_segments([ids], 3, keep="last", filler_id=None)["token_ids"].numpy().tolist()
    [[6, 7, 8], [0, 0, 0]]
    >>> pack_segments([tf.constant([5, 6, 7])], 8, last_id=2)["token_ids"].numpy().tolist()
    [5, 6, 7, 2]
    """
    check_truncate(truncate)
    check_keep(keep)
    if not segments:
        raise ValueError("`segments` must hold at least one tokenized segment.")
    if keep == "last" and len(segments) > 1:
        raise ValueError('`keep="last"` applies to a single segment; pairs use `truncate`.')
    body = body_length(sequence_length, len(segments), first_id, last_id)
    # One example (dense 1-D ids, as a `tf.data` map over examples gives): a batch of one.
    single = not isinstance(segments[0], tf.RaggedTensor) and segments[0].shape.rank == 1
    if single:
        segments = [tf.RaggedTensor.from_tensor(s[None]) for s in segments]
    segments = [tf.cast(s, tf.int32) for s in segments]
    if len(segments) == 1:
        segments = [segments[0][:, :body] if keep == "first" else segments[0][:, -body:]]
    elif truncate == "round_robin":
        segments = tf_text.RoundRobinTrimmer(body).trim(segments)
    else:
        segments = tf_text.WaterfallTrimmer(body).trim(segments)
    total = tf.add_n([s.row_lengths() for s in segments])
    batch = tf.shape(total, out_type=tf.int64)[0]

    def column(value: int, rows: tf.Tensor | None = None) -> tf.RaggedTensor:
        # One `value` per row (or per row where `rows` is True), as a ragged (B, None).
        dense = tf.fill(tf.stack([batch, 1]), tf.constant(value, tf.int32))
        if rows is None:
            return tf.RaggedTensor.from_tensor(dense)
        return tf.ragged.boolean_mask(dense, rows[:, None])

    ids_parts, segment_parts = [], []
    if first_id is not None:
        ids_parts.append(column(first_id))
        segment_parts.append(column(0))
    for index, segment in enumerate(segments):
        if index == 0 and filler_id is not None:
            segment = tf.concat([segment, column(filler_id, total == 0)], axis=1)
        ids_parts.append(segment)
        if last_id is not None:
            ids_parts.append(column(last_id))
        # Segment ids follow BERT: `[first] a [last]` is segment 0, `b [last]` segment 1, ...
        segment_parts.append(tf.zeros_like(segment) + index)
        if last_id is not None:
            segment_parts.append(column(index))
    ids = tf.concat(ids_parts, axis=1) if len(ids_parts) > 1 else ids_parts[0]
    segment_ids = tf.concat(segment_parts, axis=1) if len(segment_parts) > 1 else segment_parts[0]
    shape = [None, sequence_length] if pad_to_sequence_length else None
    token_ids = ids.to_tensor(default_value=0, shape=shape)
    segment_ids = segment_ids.to_tensor(default_value=0, shape=shape)
    # An empty batch still gets one (padding) column: models index the first position.
    spare = tf.maximum(1 - tf.shape(token_ids)[1], 0)
    token_ids = tf.pad(token_ids, [[0, 0], [0, spare]])
    segment_ids = tf.pad(segment_ids, [[0, 0], [0, spare]])
    width = tf.shape(token_ids)[1]
    padding_mask = tf.sequence_mask(ids.row_lengths(), width, dtype=tf.int32)
    out = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": segment_ids}
    if return_empty:
        out["is_empty"] = total == 0
    if single:
        out = {key: value[0] for key, value in out.items()}
    return out
