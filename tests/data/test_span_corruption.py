"""T5-style span corruption (`kerasllm.data.span_corruption`) on synthetic text."""

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.data import corrupt_spans, random_spans_noise_mask, span_corruption_dataset
from kerasllm.data.span_corruption import corrupted_length, raw_length_for
from kerasllm.testing import synthetic_text_samples

SENTINELS = 20


@pytest.fixture(scope="module")
def tokenizer():
    texts = synthetic_text_samples()["news"]
    return kt.train_sentencepiece(texts, 400, extra_tokens=kt.sentinel_tokens(SENTINELS))


def _reconstruct(inputs, targets, sentinels):
    """The original ids from a corrupted pair: each sentinel of the inputs replaced by the
    ids that follow the same sentinel in the targets."""
    spans, current = {}, None
    for token in targets:
        if token in sentinels:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[token] if token in sentinels else [token])
    return out


@pytest.mark.parametrize("length", [20, 100, 512])
def test_noise_density_and_span_count_follow_t5(length):
    masks = [random_spans_noise_mask(length, [seed, 7]).numpy() for seed in range(20)]
    for mask in masks:
        assert mask.shape == (length,) and not mask[0]  # the first span is always kept
        assert mask.sum() == round(length * 0.15)
        starts = mask & ~np.concatenate([[False], mask[:-1]])
        assert starts.sum() == max(1, round(round(length * 0.15) / 3))
    # The spans fall in different places for different seeds (with one span, T5's mask always
    # ends the sequence with it).
    if length >= 100:
        assert len({mask.tobytes() for mask in masks}) > 10


def test_corrupted_pairs_use_sentinels_in_order_and_reconstruct_the_text():
    rng = np.random.default_rng(0)
    sentinels = list(range(1000, 1000 + SENTINELS))
    for seed in range(10):
        ids = rng.integers(5, 900, size=int(rng.integers(2, 200)))
        mask = random_spans_noise_mask(len(ids), [seed, 0])
        inputs, targets = corrupt_spans(tf.constant(ids), mask, tf.constant(sentinels))
        inputs, targets = inputs.numpy().tolist(), targets.numpy().tolist()
        used = [t for t in inputs if t in sentinels]
        assert used == sentinels[: len(used)] and used  # <extra_id_0>, <extra_id_1>, ...
        assert [t for t in targets if t in sentinels] == used
        assert targets[0] == sentinels[0]
        assert _reconstruct(inputs, targets, set(sentinels)) == ids.tolist()
        assert len(inputs) + len(targets) == len(ids) + 2 * len(used)


def test_spans_are_capped_by_the_sentinels():
    mask = random_spans_noise_mask(400, [0, 0], max_spans=3).numpy()
    starts = mask & ~np.concatenate([[False], mask[:-1]])
    assert starts.sum() == 3 and mask.sum() == 60


def test_lengths_and_chunk_size():
    assert corrupted_length(100) == (90, 20)
    raw = raw_length_for(64)
    assert corrupted_length(raw)[0] <= 64 < corrupted_length(raw + 1)[0]
    with pytest.raises(ValueError, match="noise_density"):
        random_spans_noise_mask(10, [0, 0], noise_density=1.5)


TEXTS = ["", "   ", "a", *synthetic_text_samples()["news"][:6]]


def _encoder_batches(tokenizer, seed):
    ds, stats = span_corruption_dataset(TEXTS, tokenizer, 32, 4, seed=seed, shuffle=False)
    return list(ds), stats


def test_dataset_batches_reconstruct_the_texts_empty_and_short_ones_too(tokenizer):
    batches, stats = _encoder_batches(tokenizer, 3)
    sentinels = set(kt.sentinel_ids(tokenizer))
    assert len(sentinels) == SENTINELS
    rebuilt = []
    for x, y, w in batches:
        assert x["encoder_token_ids"].shape[1] == 32
        for row in range(y.shape[0]):
            encoder = x["encoder_token_ids"][row].numpy()
            inputs = encoder[x["encoder_padding_mask"][row].numpy().astype(bool)].tolist()
            labels = y[row].numpy()[w[row].numpy() > 0].tolist()
            decoder = x["decoder_token_ids"][row].numpy()[: len(labels)].tolist()
            # Teacher forcing: [start] + target in, target + [end] out.
            assert decoder == [tokenizer.start_id, *labels[:-1]]
            assert labels[-1] == tokenizer.end_id
            rebuilt.extend(_reconstruct(inputs, labels[:-1], sentinels))
    # Blank texts are skipped; "a" (one token or two) is kept; every chunk in order.
    original = [i for t in TEXTS for i in tokenizer.tokenize(t).numpy().tolist()]
    assert rebuilt == original
    assert stats.as_dict()["skipped_empty"] == 2 and stats.as_dict()["truncated"] == 0
    # A one-token chunk has nothing to corrupt: the encoder reads it, the target is empty.
    assert random_spans_noise_mask(1, [0, 0]).numpy().tolist() == [False]
    assert random_spans_noise_mask(0, [0, 0]).numpy().tolist() == []


def test_same_seed_same_corruption_other_seed_other_corruption(tokenizer):
    first, again, other = (
        [x["encoder_token_ids"].numpy() for x, _, _ in _encoder_batches(tokenizer, seed)[0]]
        for seed in (1, 1, 2)
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, other, strict=False)
    )


def test_a_tokenizer_without_sentinels_is_refused():
    plain = kt.train_sentencepiece(synthetic_text_samples()["news"], 400)
    assert kt.sentinel_ids(plain) == []
    with pytest.raises(ValueError, match="sentinel"):
        span_corruption_dataset(["a b c"], plain, 16, 2)


def test_original_target_reconstructs_the_chunk_from_the_same_corrupted_encoder(tokenizer):
    """`target="original"` (denoising): the encoder reads exactly what span corruption's reads
    (same seed), the decoder writes the uncorrupted chunk, and its default length fits the
    longest chunk with its end token (nothing cut)."""
    common = dict(seed=5, shuffle=False)
    spans, _ = span_corruption_dataset(TEXTS, tokenizer, 32, 4, **common)
    original, stats = span_corruption_dataset(TEXTS, tokenizer, 32, 4, target="original", **common)
    sentinels = set(kt.sentinel_ids(tokenizer))
    chunks = []
    for (xs, ys, ws), (xo, yo, wo) in zip(spans, original, strict=True):
        np.testing.assert_array_equal(xs["encoder_token_ids"], xo["encoder_token_ids"])
        assert yo.shape[1] == raw_length_for(32) + 1
        for row in range(yo.shape[0]):
            labels = yo[row].numpy()[wo[row].numpy() > 0].tolist()
            decoder = xo["decoder_token_ids"][row].numpy()[: len(labels)].tolist()
            assert decoder == [tokenizer.start_id, *labels[:-1]]
            assert labels[-1] == tokenizer.end_id and not sentinels & set(labels)
            # The same chunk that span corruption's pair reconstructs.
            encoder = xs["encoder_token_ids"][row].numpy()
            inputs = encoder[xs["encoder_padding_mask"][row].numpy().astype(bool)].tolist()
            span_labels = ys[row].numpy()[ws[row].numpy() > 0].tolist()[:-1]
            assert labels[:-1] == _reconstruct(inputs, span_labels, sentinels)
            chunks.extend(labels[:-1])
    assert chunks == [i for t in TEXTS for i in tokenizer.tokenize(t).numpy().tolist()]
    assert stats.as_dict()["truncated"] == 0
    with pytest.raises(ValueError, match="`target`"):
        span_corruption_dataset(TEXTS, tokenizer, 32, 4, target="spans_and_more")
