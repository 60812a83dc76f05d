"""`tf.data` pipelines for every training objective, sharing one set of helpers.

Every builder returns `(dataset, stats)`: a `tf.data.Dataset` of Keras-style
`(x, y, sample_weight)` batches in the formats of `docs/architecture.md`, and a
`PipelineStats` whose counters fill in as the dataset is iterated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm import _compat
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


def _truncate(ids: tf.Tensor, max_length: int, stats) -> tf.Tensor:
    if stats is not None:
        with tf.control_dependencies([stats.add("truncated", tf.size(ids) > max_length)]):
            ids = tf.identity(ids)
    return ids[:max_length]


def _wrap(ids: tf.Tensor, first: int | None, last: int | None) -> tf.Tensor:
    parts = ([tf.constant([first], _INT)] if first is not None else []) + [ids]
    parts += [tf.constant([last], _INT)] if last is not None else []
    return tf.concat(parts, 0) if len(parts) > 1 else ids


def boundary_ids(tokenizer: Tokenizer) -> tuple[int | None, int | None]:
    """Ids that frame one sequence: cls/sep when defined, else start/end."""
    first = tokenizer.cls_id if tokenizer.cls_id is not None else tokenizer.start_id
    last = tokenizer.sep_id if tokenizer.sep_id is not None else tokenizer.end_id
    return first, last


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


def _mask_and_pad(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return ids, tf.cast(ids != 0, _INT)


def _encoder_batch(stats, weights_key: str | None):
    """The batch function of the classification pipelines: an encoder's inputs (one segment),
    the labels, and the sample weights (`x[weights_key]`, or 1 per label when None)."""

    def to_batch(x):
        ids, padding = _mask_and_pad(x["token_ids"])
        inputs = {"token_ids": ids, "padding_mask": padding, "segment_ids": tf.zeros_like(ids)}
        inputs = _count_padding(inputs, stats, ["padding_mask"])
        labels = x["labels"]
        if weights_key is None:
            return inputs, labels, tf.ones_like(labels, tf.float32)
        return inputs, labels, tf.cast(x[weights_key], tf.float32)

    return to_batch


# ---------------------------------------------------------------------------- masking
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
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    if tokenizer.mask_id is None:
        raise ValueError("Masked LM needs a tokenizer with a mask token.")
    if not 0.0 < mask_rate < 1.0:
        raise ValueError(f"`mask_rate` must be in (0, 1). Received: {mask_rate}")
    if max_predictions is None:
        max_predictions = max(1, math.ceil(1.25 * mask_rate * sequence_length))
    _check_positive(max_predictions=max_predictions)
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = sequence_length - (first is not None) - (last is not None)
    ds = _source((_as_string_list(texts),), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)
    ds = ds.map(
        lambda ids: {"token_ids": _wrap(_truncate(ids, body, stats), first, last)},
        num_parallel_calls=AUTOTUNE,
    )
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )
    word_starts = tf.constant(tokenizer.word_start_flags()) if whole_word_masking else None
    special_ids = sorted(set(tokenizer.special_token_ids.values()))
    base_seed = 0 if seed is None else seed
    if seed is None:
        base_seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)

    def to_batch(index, x):
        masked = mask_tokens(
            x["token_ids"],
            tf.stack([tf.constant(base_seed, tf.int64), index]),
            tokenizer.mask_id,
            tokenizer.vocabulary_size,
            special_ids,
            max_predictions,
            mask_rate=mask_rate,
            word_starts=word_starts,
        )
        ids, padding = _mask_and_pad(x["token_ids"])
        inputs = {
            "token_ids": masked["token_ids"],
            "padding_mask": padding,
            "segment_ids": tf.zeros_like(ids),
            "mask_positions": masked["mask_positions"],
        }
        inputs = _count_padding(inputs, stats, ["padding_mask"])
        return inputs, masked["mask_ids"], masked["mask_weights"]

    ds = ds.enumerate().map(to_batch, num_parallel_calls=AUTOTUNE)
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
    end = tokenizer.end_id if tokenizer.end_id is not None else tokenizer.sep_id
    if end is None:
        raise ValueError("Causal LM needs a tokenizer with an end (or sep) token.")
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    ds = _source((_as_string_list(texts),), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)
    if packing:
        window = sequence_length + 1
        ds = ds.map(lambda ids: _wrap(ids, None, end), num_parallel_calls=AUTOTUNE)
        ds = ds.unbatch().batch(window, drop_remainder=drop_remainder)
        ds = ds.map(lambda w: {"token_ids": w})
        ds = _batch(ds, batch_size, window, "token_ids", False, None, drop_remainder)
    else:
        start = tokenizer.start_id
        body = sequence_length + 1 - (start is not None) - 1
        ds = ds.map(
            lambda ids: {"token_ids": _wrap(_truncate(ids, body, stats), start, end)},
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
        ids, padding = _mask_and_pad(x["token_ids"][:, :-1])
        labels = x["token_ids"][:, 1:]
        inputs = _count_padding(
            {"token_ids": ids, "padding_mask": padding}, stats, ["padding_mask"]
        )
        return inputs, labels, tf.cast(labels != 0, tf.float32)

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
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Sequence-to-sequence batches with teacher forcing.

    Encoder input: source tokens (truncated to `source_length`). With the target tokens
    `t` (truncated to `target_length - 1`): decoder input `[start] + t`, labels
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
    start, end = target_tokenizer.start_id, target_tokenizer.end_id
    if start is None or end is None:
        raise ValueError("The target tokenizer needs start and end tokens.")
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
        tgt = _truncate(tgt, target_length - 1, stats)
        return {
            "encoder_token_ids": _truncate(src, source_length, stats),
            "decoder_token_ids": _wrap(tgt, start, None),
            "labels": _wrap(tgt, None, end),
        }

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE)
    lengths = {
        "encoder_token_ids": source_length,
        "decoder_token_ids": target_length,
        "labels": target_length,
    }
    ds = _batch(ds, batch_size, lengths, "labels", bucketing, bucket_boundaries, drop_remainder)

    def to_batch(x):
        enc, enc_mask = _mask_and_pad(x["encoder_token_ids"])
        dec, dec_mask = _mask_and_pad(x["decoder_token_ids"])
        inputs = {
            "encoder_token_ids": enc,
            "encoder_padding_mask": enc_mask,
            "decoder_token_ids": dec,
            "decoder_padding_mask": dec_mask,
        }
        inputs = _count_padding(inputs, stats, ["encoder_padding_mask", "decoder_padding_mask"])
        return inputs, x["labels"], tf.cast(x["labels"] != 0, tf.float32)

    ds = ds.map(to_batch, num_parallel_calls=AUTOTUNE)
    return _finish(ds), stats


def classification_dataset(
    texts: Sequence[str],
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
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Sequence-classification batches: `[cls] tokens [sep]` and an int label.

    Args:
        texts: strings.
        labels: int class ids, one per text.
        tokenizer: a tokenizer (cls/sep, else start/end frame the sequence).
        sequence_length, batch_size, seed, shuffle, repeat, bucketing, bucket_boundaries,
        drop_remainder, input_context, num_shards, shard_index: as in
        `masked_lm_dataset`.

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
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = sequence_length - (first is not None) - (last is not None)
    ds = _source((_as_string_list(texts), labels), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)
    ds = ds.map(
        lambda ids, y: {
            "token_ids": _wrap(_truncate(ids, body, stats), first, last),
            "labels": tf.cast(y, _INT),
        },
        num_parallel_calls=AUTOTUNE,
    )
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
    label 0 and weight 0. Words that yield no token are dropped.

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
        words.append([w if j == 0 else " " + w for j, w in enumerate(_as_string_list(ws))])
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = sequence_length - (first is not None) - (last is not None)
    zero_first = 0 if first is not None else None
    zero_last = 0 if last is not None else None
    ragged_words = tf.ragged.constant(words, dtype=tf.string, row_splits_dtype=tf.int64)
    ragged_tags = tf.ragged.constant(ids, dtype=_INT, row_splits_dtype=tf.int64)
    ds = _source((ragged_words, ragged_tags), num_shards, shard_index, shuffle, seed, repeat)

    def to_example(ws, ts):
        ws, keep = _clean(ws, stats)
        pieces = tokenizer.tokenize(ws)
        keep = keep & (pieces.row_lengths() > 0)
        pieces = tf.ragged.boolean_mask(pieces, keep)
        ts = tf.boolean_mask(ts, keep)
        local_index = tf.ragged.range(pieces.row_lengths()).flat_values
        weights = tf.cast(local_index == 0, _INT)
        labels = tf.repeat(ts, pieces.row_lengths()) * weights
        flat = _truncate(pieces.flat_values, body, stats)
        n = tf.shape(flat)[0]
        return {
            "token_ids": _wrap(flat, first, last),
            "labels": _wrap(labels[:n], zero_first, zero_last),
            "weights": _wrap(weights[:n], zero_first, zero_last),
            "keep": n > 0,
        }

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE)

    def drop_keep(example):
        return {k: v for k, v in example.items() if k != "keep"}

    ds = ds.filter(lambda example: example["keep"]).map(drop_keep)
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )

    ds = ds.map(_encoder_batch(stats, weights_key="weights"), num_parallel_calls=AUTOTUNE)
    return _finish(ds), stats
