"""T5-style span corruption: a denoising objective that pretrains an encoder-decoder on plain
text (Raffel et al., 2020, section 3.1.4).

Each text is tokenized and cut into chunks that fit the encoder once corrupted; in each chunk
about `noise_density` of the tokens, in spans of mean length `mean_noise_span_length`, are
dropped. The encoder reads the chunk with each dropped span replaced by one sentinel token
(`<extra_id_0>`, `<extra_id_1>`, ... in order); the decoder writes each sentinel followed by
the span it stands for, then the end token:

    original:  Thank you for inviting me to your party last week .
    encoder:   Thank you <extra_id_0> me to your party <extra_id_1> week .
    target:    <extra_id_0> for inviting <extra_id_1> last </s>

With `target="original"` the encoder reads the same corrupted chunk and the decoder writes the
whole original chunk instead (reconstruction targets as in the "BERT-style" and "MASS-style"
objectives of Raffel et al., 2020, section 3.3.2, and BART's text infilling, Lewis et al.,
2020, here with T5's spans and sentinels): the decoder learns to copy its source and fill the
gaps, a start for tasks whose output restates the input, such as headlines that restate an
article's lead:

    target:    Thank you for inviting me to your party last week . </s>

Batches are those of `seq2seq_dataset` (decoder input `[start] + target`, labels `target +
[end]`), so a `Seq2SeqLM` trained on them with the `seq2seq` loss is then fine-tuned on any
seq2seq task with the same tokenizer. The mask is T5's `random_spans_noise_mask` (noise and
non-noise lengths drawn as random segmentations, spans alternating, the first one kept), drawn
with stateless random ops seeded by `seed` and the chunk's position in the data, so the same
seed gives the same corruption.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from kerasllm.data.pipelines import (
    AUTOTUNE,
    PipelineStats,
    _as_string_list,
    _check_positive,
    _finish,
    _seq2seq_batches,
    _seq2seq_example,
    _shard_args,
    _source,
    _tokenize_columns,
)
from kerasllm.preprocessors.seq2seq_lm import target_boundary_ids
from kerasllm.tokenizers.base import Tokenizer, sentinel_ids

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
#: What the decoder writes: the dropped spans after their sentinels (T5), or the original chunk.
TARGETS = ("spans", "original")


def _check_noise(noise_density: float, mean_noise_span_length: float) -> None:
    if not 0.0 < float(noise_density) < 1.0:
        raise ValueError(f"`noise_density` must be in (0, 1). Received: {noise_density!r}")
    if not float(mean_noise_span_length) >= 1.0:
        raise ValueError(
            f"`mean_noise_span_length` must be >= 1. Received: {mean_noise_span_length!r}"
        )


def _num_noise(length, noise_density: float, mean_noise_span_length: float, max_spans: int):
    """T5's counts for a sequence of `length` >= 2: noise tokens (at least 1, at most
    `length - 1`) and noise spans (at least 1, at most `max_spans`, at most the noise)."""
    num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise = tf.minimum(tf.maximum(num_noise, 1), length - 1)
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length), tf.int32)
    num_spans = tf.clip_by_value(num_spans, 1, max_spans)
    # A span per sentinel at most: fewer spans, the same noise (they get longer).
    num_spans = tf.minimum(num_spans, tf.minimum(num_noise, length - num_noise))
    return num_noise, num_spans


def corrupted_length(
    length: int,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    max_spans: int = 100,
) -> tuple[int, int]:
    """Encoder and target lengths (without framing) of a chunk of `length` tokens once
    corrupted: `length - noise + spans` and `noise + spans`.

    Example:
    >>> corrupted_length(100)
    (90, 20)
    """
    if length < 2:
        return length, 0
    noise, spans = (
        int(v) for v in _num_noise(length, noise_density, mean_noise_span_length, max_spans)
    )
    return length - noise + spans, noise + spans


def _random_segmentation(num_items, num_segments, seed):
    """Lengths of `num_segments` non-empty segments of `num_items` items, uniformly at random
    (T5's `_random_segmentation`); returned padded with zeros to `num_items` entries."""
    first = tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32)
    order = tf.argsort(tf.random.stateless_uniform([num_items - 1], seed))
    first = tf.pad(tf.gather(first, order), [[1, 0]])
    segment = tf.cumsum(first)
    return tf.math.unsorted_segment_sum(tf.ones_like(segment), segment, num_items)


def random_spans_noise_mask(
    length,
    seed,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    max_spans: int = 100,
) -> tf.Tensor:
    """A bool (length,) mask of the tokens to drop: about `noise_density * length` tokens in
    about `noise_density * length / mean_noise_span_length` spans, never the first token;
    deterministic in `seed` (a shape (2,) int tensor, as `tf.random.stateless_*` takes).

    Lengths 0 and 1 give an all-False mask (nothing to corrupt).

    Example:
    >>> mask = random_spans_noise_mask(20, [0, 1])
    >>> int(tf.reduce_sum(tf.cast(mask, "int32")))
    3
    """
    _check_noise(noise_density, mean_noise_span_length)
    length = tf.convert_to_tensor(length, tf.int32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)

    def mask():
        num_noise, num_spans = _num_noise(length, noise_density, mean_noise_span_length, max_spans)
        noise_lengths = _random_segmentation(num_noise, num_spans, seed)[:num_spans]
        kept_lengths = _random_segmentation(length - num_noise, num_spans, seed + [1, 0])
        kept_lengths = kept_lengths[:num_spans]
        interleaved = tf.reshape(tf.stack([kept_lengths, noise_lengths], axis=1), [-1])
        starts = tf.cumsum(interleaved)[:-1]
        indicator = tf.math.unsorted_segment_sum(tf.ones_like(starts), starts, length)
        return tf.equal(tf.cumsum(indicator) % 2, 1)

    return tf.cond(length >= 2, mask, lambda: tf.zeros([length], tf.bool))


def corrupt_spans(ids: tf.Tensor, noise_mask: tf.Tensor, sentinels: tf.Tensor):
    """Applies a noise mask to one 1-D sequence of ids.

    Returns:
        `(inputs, targets)`: the ids with each noise span replaced by its sentinel, and each
        sentinel followed by the span it replaced (`sentinels[i]` for the i-th span).

    Example:
    >>> inputs, targets = corrupt_spans(
    ...     tf.constant([5, 6, 7, 8, 9]), tf.constant([False, True, True, False, True]),
    ...     tf.constant([100, 101]))
    >>> inputs.numpy().tolist(), targets.numpy().tolist()
    ([5, 100, 8, 101], [100, 6, 7, 101, 9])
    """
    ids = tf.convert_to_tensor(ids)
    noise_mask = tf.convert_to_tensor(noise_mask, tf.bool)
    sentinels = tf.cast(sentinels, ids.dtype)
    previous = tf.pad(noise_mask[:-1], [[1, 0]])
    span_start = noise_mask & ~previous
    span_index = tf.maximum(tf.cumsum(tf.cast(span_start, tf.int32)) - 1, 0)
    sentinel = tf.gather(sentinels, tf.minimum(span_index, tf.shape(sentinels)[0] - 1))
    inputs = tf.boolean_mask(tf.where(span_start, sentinel, ids), ~noise_mask | span_start)
    # Each position contributes (its sentinel if a span starts there, its id if dropped).
    pairs = tf.reshape(tf.stack([sentinel, ids], axis=1), [-1])
    keep = tf.reshape(tf.stack([span_start, noise_mask], axis=1), [-1])
    return inputs, tf.boolean_mask(pairs, keep)


def raw_length_for(
    sequence_length: int,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    max_spans: int = 100,
) -> int:
    """The longest chunk (in tokens) whose corrupted encoder input fits `sequence_length`
    (T5's `random_spans_helper`, here without framing: the encoder takes no start or end).

    Example:
    >>> raw_length_for(128)
    142
    """
    _check_positive(sequence_length=sequence_length)
    length = sequence_length
    while (
        corrupted_length(length + 1, noise_density, mean_noise_span_length, max_spans)[0]
        <= sequence_length
    ):
        length += 1
    return length


def span_corruption_dataset(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    sequence_length: int = 128,
    batch_size: int = 32,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    target_length: int | None = None,
    target: str = "spans",
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
    """Span-corruption batches for pretraining a `Seq2SeqLM` (see the module docstring).

    Args:
        texts: plain texts (documents); blank ones and ones without tokens are skipped. Each
            is cut into consecutive chunks of `raw_length_for(sequence_length)` tokens (the
            last chunk is shorter), each corrupted independently.
        tokenizer: a tokenizer with start and end tokens and sentinel tokens
            (`kerasllm.tokenizers.sentinel_tokens`, reserved when it was trained: the recipe's
            learned tokenizer has 100 of them for this objective). The number of sentinels
            caps the spans per chunk.
        sequence_length: encoder length.
        batch_size: examples per batch.
        noise_density: fraction of each chunk's tokens dropped (T5: 0.15).
        mean_noise_span_length: mean length of a dropped span (T5: 3).
        target_length: decoder length (default: enough for every chunk's target and its
            start or end token); longer targets are cut (`stats.truncated` counts them).
        target: "spans" (T5: each sentinel and the span it replaced) or "original" (the whole
            uncorrupted chunk: reconstruction, see the module docstring).
        seed: shuffling seed and corruption seed (None: 0 for the corruption).
        shuffle, repeat, bucketing, bucket_boundaries, drop_remainder, input_context,
        num_shards, shard_index: as in `seq2seq_dataset` (shuffling and sharding are by
            text, before chunking).

    Returns:
        `(dataset, stats)`: batches `({encoder_token_ids, encoder_padding_mask,
        decoder_token_ids, decoder_padding_mask}, labels, sample_weight)`.

    Raises:
        ValueError: the tokenizer has no sentinel token, or a bad argument (named).

    Example:

    >>> import kerasllm.tokenizers as kt, kerasllm.data as kd
    >>> tok = kt.train_sentencepiece(["a b c d e f g"] * 30, 300,
    ...                              extra_tokens=kt.sentinel_tokens(10))
    >>> ds, _ = kd.span_corruption_dataset(["a b c d e f g a b c d e f g"], tok, 16, 1, seed=0)
    >>> x, y, w = next(iter(ds))
    >>> kt.sentinel_ids(tok)[0] in x["encoder_token_ids"].numpy()
    True
    """
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    _check_noise(noise_density, mean_noise_span_length)
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {TARGETS}. Received: {target!r}")
    sentinels = sentinel_ids(tokenizer)
    if not sentinels:
        raise ValueError(
            "`tokenizer` has no sentinel tokens (<extra_id_0>, ...): train it with "
            "`extra_tokens=kerasllm.tokenizers.sentinel_tokens(100)`."
        )
    start, end = target_boundary_ids(tokenizer)
    max_spans = len(sentinels)
    raw_length = raw_length_for(sequence_length, noise_density, mean_noise_span_length, max_spans)
    longest_target = (
        raw_length
        if target == "original"
        else corrupted_length(raw_length, noise_density, mean_noise_span_length, max_spans)[1]
    )
    if target_length is None:
        target_length = longest_target + 1
    _check_positive(target_length=target_length)
    if target_length < 2:
        raise ValueError(f"`target_length` must be >= 2. Received: {target_length}")
    num_shards, shard_index, batch_size = _shard_args(
        input_context, num_shards, shard_index, batch_size
    )
    stats = PipelineStats()
    texts = _as_string_list(texts)
    ds = _source((texts,), num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer}, stats)

    def chunks(ids):
        n = tf.size(ids, out_type=tf.int64)
        full = n // raw_length
        lengths = tf.concat([tf.fill([full], tf.cast(raw_length, tf.int64)), [n % raw_length]], 0)
        lengths = tf.boolean_mask(lengths, lengths > 0)
        return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(ids, lengths))

    ds = ds.flat_map(chunks).enumerate()
    sentinel_tensor = tf.constant(sentinels, tf.int32)
    base_seed = 0 if seed is None else int(seed)

    def to_example(index, ids):
        ids = tf.cast(ids, tf.int32)
        # One stateless draw per chunk position: the same seed gives the same corruption
        # whatever the parallelism (with shuffling off, or the same shuffling seed).
        mask = random_spans_noise_mask(
            tf.size(ids),
            tf.stack([tf.constant(base_seed, tf.int32), tf.cast(index, tf.int32)]),
            noise_density,
            mean_noise_span_length,
            max_spans,
        )
        inputs, targets = corrupt_spans(ids, mask, sentinel_tensor)
        if target == "original":
            targets = ids
        return _seq2seq_example(inputs, targets, sequence_length, target_length, start, end, stats)

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE)
    ds = _seq2seq_batches(
        ds, stats, sequence_length, target_length, batch_size, bucketing, bucket_boundaries,
        drop_remainder,
    )  # fmt: skip
    return _finish(ds), stats
