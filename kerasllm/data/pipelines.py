"""`tf.data` pipelines for every training objective, sharing one set of helpers.

Every builder returns `(dataset, stats)`: a `tf.data.Dataset` of Keras-style
`(x, y, sample_weight)` batches in the formats of `docs/architecture.md`, and a
`PipelineStats` whose counters fill in as the dataset is iterated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm import _compat
from kerasllm.preprocessors.causal_lm import causal_boundary_ids
from kerasllm.preprocessors.masked_lm import (
    check_masking,
    default_max_predictions,
    mask_tokens,  # noqa: F401  (kerasllm.data re-exports it)
    masked_lm_batch,
)
from kerasllm.preprocessors.packing import body_length, boundary_ids, framing_ids, pack_segments
from kerasllm.preprocessors.seq2seq_lm import target_boundary_ids
from kerasllm.preprocessors.words import encode_words, word_values_on_tokens
from kerasllm.tokenizers.base import Tokenizer

AUTOTUNE = tf.data.AUTOTUNE
_TOKENIZE_BATCH = 256
_INT = tf.int32


class PipelineStats:
    """Counters updated while a pipeline runs (int64 CPU variables).

    Attributes (read with `as_dict()`): `examples` (kept examples), `skipped_empty`
    (empty or whitespace-only texts, or texts with no tokens), `replaced_invalid_utf8`
    (texts whose invalid UTF-8 bytes were replaced by U+FFFD), `truncated` (sequences
    cut to the maximum length), `real_tokens` and `total_tokens` (non-pad and all
    positions of the emitted batches). `padding_fraction` is
    `1 - real_tokens / total_tokens`.

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_wordpiece(["a b c d"] * 10, vocabulary_size=40)
    >>> ds, stats = kd.classification_dataset(["a b", " ", "c d"], [0, 1, 0], tok, 8, 2)
    >>> _ = list(ds)
    >>> stats.as_dict()["skipped_empty"]
    1
    """

    FIELDS = (
        "examples",
        "skipped_empty",
        "replaced_invalid_utf8",
        "truncated",
        "real_tokens",
        "total_tokens",
    )

    def __init__(self):
        # Plain CPU resource variables: `_compat.local_variable` bypasses the
        # variable creators of a `tf.distribute` scope, so the counters stay local to the
        # input pipeline (no mirrored copies on accelerators).
        with tf.init_scope(), tf.device("/CPU:0"):
            self._vars = {f: _compat.local_variable(0, dtype=tf.int64, name=f) for f in self.FIELDS}

    def add(self, field: str, value) -> tf.Operation:
        """Adds `value` to a counter (usable inside `tf.data` functions)."""
        return self._vars[field].assign_add(tf.cast(value, tf.int64), read_value=False)

    @property
    def padding_fraction(self) -> float:
        """Fraction of emitted positions that are padding (0.0 before any batch)."""
        total = int(self._vars["total_tokens"].numpy())
        return 0.0 if total == 0 else 1.0 - int(self._vars["real_tokens"].numpy()) / total

    def as_dict(self) -> dict[str, Any]:
        """All counters and the padding fraction as Python numbers."""
        out: dict[str, Any] = {f: int(v.numpy()) for f, v in self._vars.items()}
        out["padding_fraction"] = self.padding_fraction
        return out

    def __repr__(self) -> str:
        return f"PipelineStats({self.as_dict()})"


# ---------------------------------------------------------------------------- helpers
def _check_positive(**kwargs) -> None:
    for name, value in kwargs.items():
        if value is not None and (not isinstance(value, (int, np.integer)) or value <= 0):
            raise ValueError(f"`{name}` must be a positive int. Received: {value!r}")


def _shard_args(
    input_context: tf.distribute.InputContext | None,
    num_shards: int | None,
    shard_index: int | None,
    batch_size: int,
) -> tuple[int, int, int]:
    """Resolves sharding to `(num_shards, shard_index, batch_size of this pipeline)`.

    With an `input_context` (from `strategy.distribute_datasets_from_function`), `batch_size` is
    global and the pipeline yields per-replica batches, as that function requires.
    """
    if input_context is not None:
        if num_shards is not None or shard_index is not None:
            raise ValueError("Pass either `input_context` or `num_shards`/`shard_index`.")
        return (
            input_context.num_input_pipelines,
            input_context.input_pipeline_id,
            input_context.get_per_replica_batch_size(batch_size),
        )
    num_shards = 1 if num_shards is None else num_shards
    shard_index = 0 if shard_index is None else shard_index
    _check_positive(num_shards=num_shards)
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"`shard_index` must be in [0, {num_shards}). Received: {shard_index}")
    return num_shards, shard_index, batch_size


def _source(
    columns: tuple,
    num_shards: int,
    shard_index: int,
    shuffle: bool,
    seed: int | None,
    repeat: bool,
) -> tf.data.Dataset:
    """Slices the raw examples, shards them (disjoint per worker), shuffles, repeats."""
    sizes = [int(c.nrows()) if isinstance(c, tf.RaggedTensor) else len(c) for c in columns]
    n = sizes[0]
    if n == 0:
        raise ValueError("The pipeline got no examples.")
    if any(size != n for size in sizes):
        raise ValueError(f"Inputs have different lengths: {sizes}.")
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    if shuffle:
        ds = ds.shuffle(min(n, 100_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds


def _as_string_list(texts) -> list:
    out = []
    for t in texts:
        if t is None:
            t = ""
        if not isinstance(t, (str, bytes)):
            raise ValueError(f"Texts must be str or bytes. Found {type(t).__name__}: {t!r}")
        out.append(t)
    return out


def _clean(text: tf.Tensor, stats: PipelineStats | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Replaces invalid UTF-8 by U+FFFD; returns `(text, keep)`, keep=False when blank."""
    fixed = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    keep = tf.strings.length(tf.strings.strip(fixed)) > 0
    if stats is not None:
        with tf.control_dependencies(
            [
                stats.add("replaced_invalid_utf8", tf.reduce_sum(tf.cast(fixed != text, _INT))),
                stats.add("skipped_empty", tf.reduce_sum(tf.cast(~keep, _INT))),
            ]
        ):
            fixed = tf.identity(fixed)
    return fixed, keep


def _tokenize_columns(ds: tf.data.Dataset, tokenizers: dict[int, Tokenizer], stats):
    """Cleans and tokenizes the string columns `{index: tokenizer}` of a tuple dataset
    (in batches, for speed); drops examples with a blank text or no token."""

    def fn(*cols):
        cols, keep = list(cols), None
        for index, tokenizer in tokenizers.items():
            text, ok = _clean(cols[index], stats)
            cols[index] = tokenizer.tokenize(text)
            ok = ok & (cols[index].row_lengths() > 0)
            keep = ok if keep is None else keep & ok
        return (*cols, keep)

    ds = ds.ragged_batch(_TOKENIZE_BATCH).map(fn, num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch().filter(lambda *cols: cols[-1])
    return ds.map(lambda *cols: cols[:-1] if len(cols) > 2 else cols[0])


def _frame(
    ids: tf.Tensor,
    sequence_length: int,
    first: int | None,
    last: int | None,
    stats: PipelineStats | None,
) -> dict[str, tf.Tensor]:
    """One example's ids framed as `[first] ids [last]` and truncated to `sequence_length` by
    `pack_segments`, the framing the preprocessors and the exported signatures use too;
    returns its 1-D `token_ids` and `padding_mask`, and counts a truncation in `stats`."""
    if stats is not None:
        cut = tf.size(ids) > body_length(sequence_length, 1, first, last)
        with tf.control_dependencies([stats.add("truncated", cut)]):
            ids = tf.identity(ids)
    # Examples without tokens were dropped before: no filler.
    framed = pack_segments([ids], sequence_length, first, last, filler_id=None)
    return {"token_ids": framed["token_ids"], "padding_mask": framed["padding_mask"]}


def _default_boundaries(max_length: int) -> list[int]:
    bounds = sorted({max(2, max_length * k // 8) for k in (1, 2, 3, 4, 6)})
    return [b for b in bounds if b < max_length]


def _batch(
    ds: tf.data.Dataset,
    batch_size: int,
    max_length: int | dict[str, int],
    length_key: str,
    bucketing: bool | str,
    bucket_boundaries: Sequence[int] | None,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Pads dict elements of 1-D tensors with 0 (the pad id / no label / no weight).

    - `bucketing=False`: every batch is padded to the fixed maximum length.
    - `bucketing=True`: examples of similar length (`length_key`) are grouped and padded to
      the batch max (least padding; shapes vary from batch to batch).
    - `bucketing="static"`: examples are grouped by their longest sequence and padded to their
      bucket's length, so batches take one shape per bucket (one XLA compilation each); the
      batch size of a bucket of length L is `batch_size * max_length // L`, so every batch
      holds about as many tokens as a full-length batch. `bucket_boundaries` then lists the
      padded lengths (the maximum length is always the last one).
    """
    spec = ds.element_spec
    if isinstance(max_length, int):
        max_length = {k: max_length for k in spec}
    if bucketing not in (False, True, "static"):
        raise ValueError(f"`bucketing` must be False, True or 'static'; got {bucketing!r}.")

    def padded(dynamic: bool):
        return {
            k: ([None] if dynamic else [max_length[k]]) if s.shape.rank else []
            for k, s in spec.items()
        }

    values = {k: tf.constant(0, s.dtype) for k, s in spec.items()}
    if not bucketing:
        return ds.padded_batch(batch_size, padded(False), values, drop_remainder=drop_remainder)
    if bucketing == "static":
        return _static_buckets(
            ds, batch_size, max_length, bucket_boundaries, values, drop_remainder
        )
    bounds = list(bucket_boundaries or _default_boundaries(max_length[length_key]))
    _check_boundaries(bounds)
    return ds.bucket_by_sequence_length(
        lambda e: tf.shape(e[length_key])[0],
        bucket_boundaries=bounds,
        bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
        padded_shapes=padded(True),
        padding_values=values,
        drop_remainder=drop_remainder,
    )


def _check_boundaries(bounds: list[int]) -> None:
    if not bounds or bounds != sorted(set(bounds)) or bounds[0] < 1:
        raise ValueError(f"`bucket_boundaries` must be increasing positive ints: {bounds}")


def _static_buckets(ds, batch_size, max_length, bucket_boundaries, values, drop_remainder):
    sequence_keys = [k for k, s in ds.element_spec.items() if s.shape.rank]
    longest = max(max_length[k] for k in sequence_keys)
    lengths = list(bucket_boundaries or _default_boundaries(longest))
    _check_boundaries(lengths)
    lengths = [n for n in lengths if n < longest] + [longest]
    # tf.data buckets hold lengths in [b_{i-1}, b_i) and pad to b_i - 1: shift by one. The
    # extra last bucket (longer than `longest`) never receives an element: sequences were
    # truncated before batching.
    boundaries = [n + 1 for n in lengths]
    batch_sizes = [max(1, batch_size * longest // n) for n in lengths] + [1]
    return ds.bucket_by_sequence_length(
        lambda e: tf.reduce_max([tf.shape(e[k])[0] for k in sequence_keys]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=batch_sizes,
        padded_shapes={k: [None] if k in sequence_keys else [] for k in ds.element_spec},
        padding_values=values,
        pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )


def _count_padding(x: dict, stats, mask_keys: Sequence[str]) -> dict:
    if stats is None:
        return x
    real = tf.add_n([tf.reduce_sum(tf.cast(x[k], tf.int64)) for k in mask_keys])
    total = tf.add_n([tf.size(x[k], out_type=tf.int64) for k in mask_keys])
    examples = tf.shape(x[mask_keys[0]], out_type=tf.int64)[0]
    ops = [stats.add("real_tokens", real), stats.add("total_tokens", total)]
    ops.append(stats.add("examples", examples))
    with tf.control_dependencies(ops):
        return {k: tf.identity(v) for k, v in x.items()}


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetching, and deterministic order: the same seed (or no shuffling) gives the same
    batches."""
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(AUTOTUNE).with_options(options)


#: The inputs of an encoder (what the classification pipelines emit as `x`).
_ENCODER_KEYS = ("token_ids", "padding_mask", "segment_ids")


def _masked_lm_args(
    tokenizer, sequence_length, batch_size, mask_rate, max_predictions, input_context,
    num_shards, shard_index,
) -> tuple[int, int, int, int]:  # fmt: skip
    """Checks the arguments the masked-LM pipelines share (`masked_lm_dataset`,
    `next_sentence_dataset`); returns `(max_predictions, num_shards, shard_index,
    batch_size)` with the defaults resolved and the batch size per input pipeline."""
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    check_masking(tokenizer, mask_rate)
    if max_predictions is None:
        max_predictions = default_max_predictions(mask_rate, sequence_length)
    _check_positive(max_predictions=max_predictions)
    return (max_predictions, *_shard_args(input_context, num_shards, shard_index, batch_size))


def _masked_batches(
    ds: tf.data.Dataset,
    tokenizer: Tokenizer,
    max_predictions: int,
    mask_rate: float,
    whole_word_masking: bool,
    seed: int | None,
    stats,
    targets: dict[str, str] | None = None,
) -> tf.data.Dataset:
    """Masks padded batches of framed examples (`token_ids`, `padding_mask`, optionally
    `segment_ids`) as `MaskedLMPreprocessor` does (`masked_lm_batch`), each batch seeded by
    `(seed, its index)` (a random seed when None), so masks are fresh every epoch and the
    same seed gives the same batches. The batch's segment ids, if any, are kept (zeros otherwise).

    Yields `(x, mask_ids, mask_weights)`; with `targets` (`{label name: batch key}`),
    `y = {"mask_ids", label name: batch[key], ...}` instead.
    """
    word_starts = tf.constant(tokenizer.word_start_flags()) if whole_word_masking else None
    base_seed = seed
    if seed is None:
        base_seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)

    def to_batch(index, x):
        inputs, mask_ids, weights = masked_lm_batch(
            x["token_ids"],
            x["padding_mask"],
            tf.stack([tf.constant(base_seed, tf.int64), index]),
            tokenizer,
            max_predictions,
            mask_rate=mask_rate,
            word_starts=word_starts,
        )
        if "segment_ids" in x:  # sentence pairs: 0 on `[cls] A [sep]`, 1 on `B [sep]`
            inputs["segment_ids"] = tf.cast(x["segment_ids"], inputs["segment_ids"].dtype)
        inputs = _count_padding(inputs, stats, ["padding_mask"])
        if targets is None:
            return inputs, mask_ids, weights
        labels = {"mask_ids": mask_ids, **{name: x[key] for name, key in targets.items()}}
        return inputs, labels, weights

    return ds.enumerate().map(to_batch, num_parallel_calls=AUTOTUNE)


def _encoder_batch(stats, weights_key: str | None):
    """The batch function of the classification pipelines: an encoder's inputs (as
    `pack_segments` framed them, padded with 0), the labels, and the sample weights
    (`x[weights_key]`, or 1 per label when None)."""

    def to_batch(x):
        inputs = {k: x[k] for k in _ENCODER_KEYS}
        inputs = _count_padding(inputs, stats, ["padding_mask"])
        labels = x["labels"]
        if weights_key is None:
            return inputs, labels, tf.ones_like(labels, tf.float32)
        return inputs, labels, tf.cast(x[weights_key], tf.float32)

    return to_batch


# ---------------------------------------------------------------------------- builders
def masked_lm_dataset(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    mask_rate: float = 0.15,
    max_predictions: int | None = None,
    whole_word_masking: bool = False,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Masked-LM batches with dynamic masking (fresh masks every epoch).

    Each text becomes `[cls] tokens [sep]` (start/end for tokenizers without cls/sep),
    truncated to `sequence_length`; 15% of the non-special tokens are selected (80% ->
    mask, 10% -> random token, 10% unchanged), whole words with `whole_word_masking`.

    Args:
        texts: strings (one example each).
        tokenizer: a `kerasllm.tokenizers.Tokenizer` with a mask token.
        sequence_length: maximum length T (padding target without bucketing).
        batch_size: batch size (global when `input_context` is given).
        mask_rate: fraction of tokens to predict.
        max_predictions: width P of `mask_positions`; default `ceil(1.25*rate*T)`.
        whole_word_masking: mask all pieces of a selected word together.
        seed: seed for shuffling and masking; the same seed gives identical batches.
        shuffle: shuffle examples (reshuffled each epoch).
        repeat: repeat forever.
        bucketing: group by length and pad to the batch maximum.
        bucket_boundaries: lengths separating buckets (default: fractions of T).
        drop_remainder: drop the last partial batch (per bucket).
        input_context: a `tf.distribute.InputContext`; shards by input pipeline.
        num_shards: number of shards (workers) when no `input_context`.
        shard_index: this worker's shard.

    Returns:
        `(dataset, stats)`: batches `({token_ids, padding_mask, segment_ids,
        mask_positions}, mask_ids, mask_weights)` and a `PipelineStats`.

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_wordpiece(["the cat sat on the mat"] * 20, vocabulary_size=60)
    >>> ds, stats = kd.masked_lm_dataset(["the cat sat on the mat"] * 8, tok, 12, 4, seed=1)
    >>> x, y, w = next(iter(ds))
    >>> x["token_ids"].shape, x["mask_positions"].shape, y.shape
    (TensorShape([4, 12]), TensorShape([4, 3]), TensorShape([4, 3]))
    """
    max_predictions, num_shards, shard_index, batch_size = _masked_lm_args(
        tokenizer, sequence_length, batch_size, mask_rate, max_predictions, input_context,
        num_shards, shard_index,
    )  # fmt: skip
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body_length(sequence_length, 1, first, last)  # a clear error before any data is read
    ds = _source((_as_string_list(texts),), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)
    ds = ds.map(
        lambda ids: _frame(ids, sequence_length, first, last, stats), num_parallel_calls=AUTOTUNE
    )
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )
    ds = _masked_batches(ds, tokenizer, max_predictions, mask_rate, whole_word_masking, seed, stats)
    return _finish(ds), stats


def causal_lm_dataset(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    packing: bool = True,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Causal-LM batches: `y` is `token_ids` shifted left by one.

    With `packing` (default), documents are tokenized, each followed by the end token as
    separator, concatenated, and cut into windows of `sequence_length + 1` tokens (inputs
    are the first T, labels the last T); only the last window is padded. Without packing,
    each document is `[start] tokens [end]`, truncated, one per row (bucketing applies).

    Args:
        texts: documents.
        tokenizer: a tokenizer with an end token.
        sequence_length: T.
        batch_size: batch size (global when `input_context` is given).
        packing: pack documents into full windows.
        seed, shuffle, repeat, bucketing, bucket_boundaries, drop_remainder,
        input_context, num_shards, shard_index: as in `masked_lm_dataset`.

    Returns:
        `(dataset, stats)`: batches `({token_ids, padding_mask}, labels, sample_weight)`.

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_byte_bpe(["hello world"] * 10, vocabulary_size=265)
    >>> ds, _ = kd.causal_lm_dataset(["hello world"] * 4, tok, 8, 2, seed=0)
    >>> x, y, w = next(iter(ds))
    >>> bool((x["token_ids"][:, 1:] == y[:, :-1]).numpy().all())
    True
    """
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    start, end = causal_boundary_ids(tokenizer)
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    ds = _source((_as_string_list(texts),), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)
    if packing:
        # Documents are not framed one by one but streamed: each ends with the end token,
        # and the stream is cut into windows (no start token, no truncation, no padding but
        # the last window's).
        window = sequence_length + 1
        end_token = tf.constant([end], _INT)
        ds = ds.map(lambda ids: tf.concat([ids, end_token], 0), num_parallel_calls=AUTOTUNE)
        ds = ds.unbatch().batch(window, drop_remainder=drop_remainder)
        ds = ds.map(lambda w: {"token_ids": w, "padding_mask": tf.ones_like(w)})
        ds = _batch(ds, batch_size, window, "token_ids", False, None, drop_remainder)
    else:
        # `[start] tokens [end]`, one id longer than the inputs, as `CausalLMPreprocessor`.
        ds = ds.map(
            lambda ids: _frame(ids, sequence_length + 1, start, end, stats),
            num_parallel_calls=AUTOTUNE,
        )
        ds = _batch(
            ds,
            batch_size,
            sequence_length + 1,
            "token_ids",
            bucketing,
            bucket_boundaries,
            drop_remainder,
        )

    def to_batch(x):
        inputs = {"token_ids": x["token_ids"][:, :-1], "padding_mask": x["padding_mask"][:, :-1]}
        inputs = _count_padding(inputs, stats, ["padding_mask"])
        return inputs, x["token_ids"][:, 1:], tf.cast(x["padding_mask"][:, 1:], tf.float32)

    ds = ds.map(to_batch, num_parallel_calls=AUTOTUNE)
    return _finish(ds), stats


def seq2seq_dataset(
    pairs: Sequence[tuple[str, str]],
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer | None = None,
    source_length: int = 128,
    target_length: int = 128,
    batch_size: int = 32,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
    source_start_token: bool = False,
    source_end_token: bool = False,
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Sequence-to-sequence batches with teacher forcing.

    Encoder input: source tokens (truncated to `source_length`), framed `[start] src [end]`
    by `source_start_token` / `source_end_token` as `Seq2SeqLMPreprocessor` frames it. With
    the target tokens `t` (truncated to `target_length - 1`): decoder input `[start] + t`, labels
    `t + [end]` (i.e. decoder input = `[start] + labels[:-1]`); `sample_weight` is 0 on
    padding.

    Args:
        pairs: `(source, target)` strings.
        source_tokenizer: tokenizer of the source side.
        target_tokenizer: tokenizer of the target side (default: the source one); needs
            start and end tokens.
        source_length: maximum encoder length.
        target_length: maximum decoder length.
        batch_size, seed, shuffle, repeat, bucketing, bucket_boundaries, drop_remainder,
        input_context, num_shards, shard_index: as in `masked_lm_dataset` (bucketing
        groups by target length).
        source_start_token, source_end_token: frame sources with the source tokenizer's
            start / end ids (a family's Hugging Face framing, e.g. T5 end only, BART both).

    Returns:
        `(dataset, stats)`: batches `({encoder_token_ids, encoder_padding_mask,
        decoder_token_ids, decoder_padding_mask}, labels, sample_weight)`.

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_sentencepiece(["a b c d e"] * 30, vocabulary_size=280)
    >>> ds, _ = kd.seq2seq_dataset([("a b", "c d")], tok, tok, 8, 8, 1, seed=0)
    >>> x, y, w = next(iter(ds))
    >>> int(x["decoder_token_ids"][0, 0]) == tok.start_id
    True
    """
    target_tokenizer = target_tokenizer or source_tokenizer
    _check_positive(source_length=source_length, target_length=target_length)
    _check_positive(batch_size=batch_size)
    if target_length < 2:
        raise ValueError(f"`target_length` must be >= 2. Received: {target_length}")
    start, end = target_boundary_ids(target_tokenizer)
    first, last = framing_ids(source_tokenizer, source_start_token, source_end_token)
    pairs = list(pairs)
    if any(len(p) != 2 for p in pairs):
        raise ValueError("`pairs` must be (source, target) 2-tuples.")
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    sources = _as_string_list([p[0] for p in pairs])
    targets = _as_string_list([p[1] for p in pairs])
    ds = _source((sources, targets), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: source_tokenizer, 1: target_tokenizer}, stats)

    def to_example(src, tgt):
        return _seq2seq_example(
            src, tgt, source_length, target_length, start, end, stats, first, last
        )

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE)
    ds = _seq2seq_batches(
        ds, stats, source_length, target_length, batch_size, bucketing, bucket_boundaries,
        drop_remainder,
    )  # fmt: skip
    return _finish(ds), stats


def _seq2seq_example(
    src, tgt, source_length, target_length, start, end, stats, first=None, last=None
) -> dict:
    """One seq2seq example from token ids, framed as `Seq2SeqLMPreprocessor` frames it:
    `[first] src [last]` for the encoder (no framing ids by default), `[start] tgt` in and
    `tgt [end]` out for the decoder (shared by `seq2seq_dataset` and span corruption)."""
    encoder = _frame(src, source_length, first, last, stats)
    decoder = _frame(tgt, target_length, start, None, stats)
    labels = _frame(tgt, target_length, None, end, None)  # the same cut, counted once
    return {
        "encoder_token_ids": encoder["token_ids"],
        "encoder_padding_mask": encoder["padding_mask"],
        "decoder_token_ids": decoder["token_ids"],
        "decoder_padding_mask": decoder["padding_mask"],
        "labels": labels["token_ids"],
    }


def _seq2seq_batches(
    ds,
    stats,
    source_length,
    target_length,
    batch_size,
    bucketing,
    bucket_boundaries,
    drop_remainder,
) -> tf.data.Dataset:
    """Batches `_seq2seq_example`s into Keras `(x, y, sample_weight)` tuples."""
    lengths = {
        "encoder_token_ids": source_length,
        "encoder_padding_mask": source_length,
        "decoder_token_ids": target_length,
        "decoder_padding_mask": target_length,
        "labels": target_length,
    }
    ds = _batch(ds, batch_size, lengths, "labels", bucketing, bucket_boundaries, drop_remainder)

    def to_batch(x):
        inputs = {k: v for k, v in x.items() if k != "labels"}
        inputs = _count_padding(inputs, stats, ["encoder_padding_mask", "decoder_padding_mask"])
        # Labels and decoder inputs have the same lengths: the decoder mask weighs the labels.
        return inputs, x["labels"], tf.cast(x["decoder_padding_mask"], tf.float32)

    return ds.map(to_batch, num_parallel_calls=AUTOTUNE)


def _unpadded_rows(batch: dict[str, tf.Tensor], keys: Sequence[str]) -> dict[str, tf.RaggedTensor]:
    """The rows of a framed batch (`pack_segments` / `encode_words` outputs) without their
    padding: unbatched, each example is its own length again (for `_batch`'s padding and
    bucketing)."""
    lengths = tf.reduce_sum(batch["padding_mask"], axis=1)
    return {k: tf.RaggedTensor.from_tensor(batch[k], lengths=lengths) for k in keys}


def _text_segments(texts) -> list[list]:
    """`classification_dataset`'s `texts` as one or two lists of strings (single texts, or a
    tuple `(texts_a, texts_b)` of sentence pairs)."""
    pair = (
        isinstance(texts, tuple)
        and len(texts) == 2
        and not any(isinstance(part, (str, bytes)) for part in texts)
    )
    if not pair:
        return [_as_string_list(texts)]
    a, b = (_as_string_list(part) for part in texts)
    if len(a) != len(b):
        raise ValueError(
            f"Sentence pairs `(texts_a, texts_b)` must hold as many texts each: {len(a)} and "
            f"{len(b)}."
        )
    return [a, b]


def classification_dataset(
    texts: Sequence[str] | tuple[Sequence[str], Sequence[str]],
    labels: Sequence[int],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
    truncate: str = "round_robin",
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Sequence-classification batches: `[cls] tokens [sep]` (or `[cls] a [sep] b [sep]` for
    sentence pairs) and an int label.

    Framed by `kerasllm.preprocessors.pack_segments`, as `TextClassifierPreprocessor` and the
    exported classification signature frame text, so training, `predict` and serving see the
    same ids. Examples with a blank text, or a text without any token, are skipped.

    Args:
        texts: strings; or, for sentence pairs, a **tuple** of two equally long sequences of
            strings `(texts_a, texts_b)` (segment ids 0 on `[cls] a [sep]`, 1 on `b [sep]`).
        labels: int class ids, one per text (pair).
        tokenizer: a tokenizer (cls/sep, else start/end frame the sequence).
        sequence_length, batch_size, seed, shuffle, repeat, bucketing, bucket_boundaries,
        drop_remainder, input_context, num_shards, shard_index: as in
        `masked_lm_dataset`.
        truncate: which side of a too-long pair loses tokens: "round_robin" (the longer one
            first) or "waterfall" (the second text first); as in `TextClassifierPreprocessor`.

    Returns:
        `(dataset, stats)`: batches `({token_ids, padding_mask, segment_ids}, labels,
        sample_weight)` with labels int32 (B,) and sample_weight 1.0 (B,).

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_wordpiece(["good film", "bad film"] * 10, vocabulary_size=40)
    >>> ds, _ = kd.classification_dataset(["good film", "bad film"], [1, 0], tok, 6, 2)
    >>> x, y, w = next(iter(ds))
    >>> x["token_ids"].shape, sorted(y.numpy().tolist())
    (TensorShape([2, 6]), [0, 1])
    """
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    labels = [int(v) for v in labels]
    if any(v < 0 for v in labels):
        raise ValueError("`labels` must be non-negative class ids.")
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    segments = _text_segments(texts)
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = body_length(sequence_length, len(segments), first, last)
    columns = (*segments, labels)
    ds = _source(columns, num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, dict.fromkeys(range(len(segments)), tokenizer), stats)

    def frame(*cols):
        # In batches (as tokenization), then back to one unpadded example per element.
        *ids, y = cols
        cut = tf.add_n([part.row_lengths() for part in ids]) > body
        with tf.control_dependencies([stats.add("truncated", tf.reduce_sum(tf.cast(cut, _INT)))]):
            x = pack_segments(ids, sequence_length, first, last, truncate=truncate)
        return {**_unpadded_rows(x, _ENCODER_KEYS), "labels": tf.cast(y, _INT)}

    ds = ds.ragged_batch(_TOKENIZE_BATCH).map(frame, num_parallel_calls=AUTOTUNE)
    # A map after `unbatch` gives the unbatched ragged rows as plain tensors (`padded_batch`
    # takes no ragged spec).
    ds = ds.unbatch().map(lambda example: example)
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )

    ds = ds.map(_encoder_batch(stats, weights_key=None), num_parallel_calls=AUTOTUNE)
    return _finish(ds), stats


def token_classification_dataset(
    tokens: Sequence[Sequence[str]],
    tags: Sequence[Sequence[int | str]],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    label_vocabulary: Sequence[str] | None = None,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Token-classification batches: each word's tag sits on its first sub-word.

    Words are tokenized one by one (a space is prepended to every word but the first, so
    byte-level BPE sees them as in running text). The tag of a word labels its first
    sub-word (`sample_weight` 1); other sub-words, `[cls]`/`[sep]` and padding have
    label 0 and weight 0. Words that are blank or yield no token get no label; examples
    without any token are skipped. The alignment is `kerasllm.preprocessors.words.encode_words`,
    which `TokenClassifierPreprocessor` and the exported tagging signature use too.

    Args:
        tokens: list of word lists.
        tags: list of tag lists (strings with `label_vocabulary`, or int ids).
        tokenizer: a tokenizer.
        sequence_length: maximum length T (words beyond it are truncated).
        batch_size: batch size.
        label_vocabulary: tag names in id order, required when tags are strings.
        seed, shuffle, repeat, bucketing, bucket_boundaries, drop_remainder,
        input_context, num_shards, shard_index: as in `masked_lm_dataset`.

    Returns:
        `(dataset, stats)`: batches `({token_ids, padding_mask, segment_ids}, labels
        (B, T), sample_weight (B, T))`.

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_wordpiece(["John lives in Paris"] * 10, vocabulary_size=60)
    >>> ds, _ = kd.token_classification_dataset(
    ...     [["John", "lives", "in", "Paris"]], [["B-per", "O", "O", "B-loc"]], tok, 8, 1,
    ...     label_vocabulary=["O", "B-per", "B-loc"])
    >>> x, y, w = next(iter(ds))
    >>> y.numpy()[0].tolist(), w.numpy()[0].tolist()
    ([0, 1, 0, 0, 2, 0, 0, 0], [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    """
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} token lists but {len(tags)} tag lists.")
    index = {t: i for i, t in enumerate(label_vocabulary or [])}
    words, ids = [], []
    for i, (ws, ts) in enumerate(zip(tokens, tags)):
        if len(ws) != len(ts):
            raise ValueError(f"Example {i}: {len(ws)} words but {len(ts)} tags.")
        if any(isinstance(t, str) for t in ts) and not index:
            raise ValueError("String tags need `label_vocabulary`.")
        try:
            ids.append([index[t] if isinstance(t, str) else int(t) for t in ts])
        except KeyError as e:
            raise ValueError(f"Example {i}: tag {e} is not in `label_vocabulary`.") from None
        words.append(_as_string_list(ws))
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    ragged_words = tf.ragged.constant(words, dtype=tf.string, row_splits_dtype=tf.int64)
    ragged_tags = tf.ragged.constant(ids, dtype=_INT, row_splits_dtype=tf.int64)
    ds = _source((ragged_words, ragged_tags), num_shards, shard_index, shuffle, seed, repeat)

    def to_examples(ws, ts):
        # In batches (tokenization is faster so), then back to one unpadded example each.
        # `_clean` counts invalid UTF-8 and blank words; `encode_words` gives blank words no
        # token, as it does in the preprocessor and in serving.
        flat, _ = _clean(ws.flat_values, stats)
        encoded = encode_words(tokenizer, ws.with_flat_values(flat), sequence_length, first, last)
        truncated = tf.reduce_sum(tf.cast(encoded["truncated"], _INT))
        with tf.control_dependencies([stats.add("truncated", truncated)]):
            labels = word_values_on_tokens(ts, encoded)
        weights = word_values_on_tokens(tf.ones_like(ts), encoded)
        framed = {**encoded, "labels": labels, "weights": weights}
        rows = _unpadded_rows(framed, (*_ENCODER_KEYS, "labels", "weights"))
        return rows, tf.reduce_any(encoded["classified"], axis=1)

    ds = ds.ragged_batch(_TOKENIZE_BATCH).map(to_examples, num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch().filter(lambda example, keep: keep).map(lambda example, keep: example)
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )

    ds = ds.map(_encoder_batch(stats, weights_key="weights"), num_parallel_calls=AUTOTUNE)
    return _finish(ds), stats
