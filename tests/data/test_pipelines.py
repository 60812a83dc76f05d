import numpy as np
import pytest
import tensorflow as tf

from kerasllm import data

SPECIAL = [0, 1, 2, 3, 4]
MASK_ID = 2
VOCAB = 1000


def _batches(ds, n=None):
    out = []
    for i, batch in enumerate(ds):
        if n is not None and i >= n:
            break
        out.append(tf.nest.map_structure(lambda t: t.numpy(), batch))
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, x, y)


def test_mask_statistics_over_100k_tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, size=(600, 256)).astype(np.int32)
    lengths = rng.integers(120, 257, size=600)
    ids[np.arange(256)[None, :] >= lengths[:, None]] = 0  # padding
    ids[:, 0] = 3  # [CLS]
    ids[np.arange(600), lengths - 1] = 4  # [SEP]
    out = data.mask_tokens(tf.constant(ids), tf.constant([7, 0], tf.int64), MASK_ID, VOCAB,
                           SPECIAL, max_predictions=64)  # fmt: skip
    out = {k: v.numpy() for k, v in out.items()}
    candidates = ~np.isin(ids, SPECIAL)
    assert candidates.sum() > 100_000
    weights = out["mask_weights"] > 0
    selected = np.zeros_like(candidates)
    rows = np.nonzero(weights)[0]
    selected[rows, out["mask_positions"][weights]] = True
    assert not (selected & ~candidates).any()  # never special tokens or padding
    assert abs(selected.sum() / candidates.sum() - 0.15) < 0.005
    np.testing.assert_array_equal(out["mask_ids"][weights], ids[selected])
    new = out["token_ids"][selected]
    old = ids[selected]
    as_mask = (new == MASK_ID).mean()
    kept = (new == old).mean()
    randomized = ((new != MASK_ID) & (new != old)).mean()
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.015 and abs(randomized - 0.1) < 0.015
    assert not np.isin(new[(new != MASK_ID) & (new != old)], SPECIAL).any()
    np.testing.assert_array_equal(out["token_ids"][~selected], ids[~selected])
    # Same seed, same masks; other seed, other masks.
    again = data.mask_tokens(tf.constant(ids), tf.constant([7, 0], tf.int64), MASK_ID, VOCAB,
                             SPECIAL, max_predictions=64)  # fmt: skip
    np.testing.assert_array_equal(again["token_ids"], out["token_ids"])
    other = data.mask_tokens(tf.constant(ids), tf.constant([7, 1], tf.int64), MASK_ID, VOCAB,
                             SPECIAL, max_predictions=64)  # fmt: skip
    assert (other["token_ids"].numpy() != out["token_ids"]).any()


def test_whole_word_masking_selects_whole_words():
    rng = np.random.default_rng(1)
    word_starts = np.ones(VOCAB, bool)
    word_starts[500:] = False  # ids >= 500 are "##" continuations
    ids = rng.integers(5, VOCAB, size=(200, 128)).astype(np.int32)
    ids[:, 0] = 3
    out = data.mask_tokens(ids, tf.constant([3, 3], tf.int64), MASK_ID, VOCAB, SPECIAL, 40,
                           word_starts=tf.constant(word_starts))  # fmt: skip
    weights = out["mask_weights"].numpy() > 0
    selected = np.zeros(ids.shape, bool)
    selected[np.nonzero(weights)[0], out["mask_positions"].numpy()[weights]] = True
    word = np.cumsum(word_starts[ids] | np.isin(ids, SPECIAL), axis=1)
    for r in range(ids.shape[0]):
        for w in np.unique(word[r][selected[r]]):
            assert selected[r][word[r] == w].all()  # no partial words
    rate = selected.sum() / (~np.isin(ids, SPECIAL)).sum()
    assert 0.12 < rate < 0.17


def test_masked_lm_batches(wp_tokenizer, text_pairs):
    texts = [s for s, _ in text_pairs]
    ds, stats = data.masked_lm_dataset(texts, wp_tokenizer, 64, 16, seed=3, whole_word_masking=True)
    batches = _batches(ds)
    x, y, w = batches[0]
    assert set(x) == {"token_ids", "padding_mask", "segment_ids", "mask_positions"}
    assert x["token_ids"].shape == (16, 64) and x["mask_positions"].shape == (16, 12)
    assert y.shape == w.shape == (16, 12) and w.dtype == np.float32
    assert (x["token_ids"][:, 0] == wp_tokenizer.cls_id).all()
    assert ((x["token_ids"] != 0) == (x["padding_mask"] == 1)).all()
    hit = np.take_along_axis(x["token_ids"], x["mask_positions"], 1)[w > 0]
    assert (hit == wp_tokenizer.mask_id).mean() > 0.6
    assert stats.as_dict()["examples"] == len(texts)
    # Dynamic masking: a second epoch masks differently.
    ds2, _ = data.masked_lm_dataset(texts[:16], wp_tokenizer, 64, 16, seed=3, repeat=True)
    first, second = _batches(ds2, 2)
    assert (first[0]["mask_positions"] != second[0]["mask_positions"]).any()


def test_seq2seq_shift_exact(toy_wordpiece):
    tok = toy_wordpiece  # [CLS]=3 is the start token, [SEP]=4 the end token
    pairs = [("a b", "c a b"), ("play", "playing x"), ("x", "a b c a b c a b c")]
    ds, stats = data.seq2seq_dataset(pairs, tok, tok, 6, 6, 3, shuffle=False)
    x, y, w = _batches(ds)[0]
    np.testing.assert_array_equal(
        x["encoder_token_ids"][:2], [[5, 6, 0, 0, 0, 0], [8, 0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(x["encoder_padding_mask"][0], [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(
        x["decoder_token_ids"], [[3, 7, 5, 6, 0, 0], [3, 8, 9, 10, 0, 0], [3, 5, 6, 7, 5, 6]]
    )
    np.testing.assert_array_equal(y, [[7, 5, 6, 4, 0, 0], [8, 9, 10, 4, 0, 0], [5, 6, 7, 5, 6, 4]])
    np.testing.assert_array_equal(w, (y != 0).astype(np.float32))
    np.testing.assert_array_equal(x["decoder_padding_mask"], (x["decoder_token_ids"] != 0))
    real = x["decoder_token_ids"][:, 1:] != 0  # decoder input = [start] + labels[:-1]
    np.testing.assert_array_equal(x["decoder_token_ids"][:, 1:][real], y[:, :-1][real])
    assert stats.as_dict()["truncated"] == 1


def test_causal_lm_packing(sp_tokenizer, text_pairs):
    texts = [s for s, _ in text_pairs]
    ds, stats = data.causal_lm_dataset(texts, sp_tokenizer, 32, 8, shuffle=False)
    batches = _batches(ds)
    for x, y, w in batches:
        np.testing.assert_array_equal(x["token_ids"][:, 1:], y[:, :-1])
        np.testing.assert_array_equal(w, (y != 0))
        np.testing.assert_array_equal(x["padding_mask"], x["token_ids"] != 0)
    # Windows of T + 1 tokens: inputs are the first T, labels the last T; documents are
    # concatenated in order, each followed by the end token.
    stream = np.concatenate(
        [np.append(x["token_ids"][i], y[i, -1]) for x, y, _ in batches for i in range(len(y))]
    )
    expected = np.concatenate(
        [np.append(r, sp_tokenizer.end_id) for r in sp_tokenizer.tokenize(texts).to_list()]
    )
    np.testing.assert_array_equal(stream[stream != 0], expected)
    assert stats.padding_fraction < 0.01
    unpacked, stats2 = data.causal_lm_dataset(texts, sp_tokenizer, 32, 8, packing=False)
    x, y, _ = _batches(unpacked)[0]
    assert (x["token_ids"][:, 0] == sp_tokenizer.start_id).all()
    assert stats2.padding_fraction > stats.padding_fraction


def test_classification_and_bad_input(wp_tokenizer):
    texts = ["good film", "", "   \t ", b"bad \xff\xfe film", "word " * 200, "fine"]
    labels = [1, 0, 0, 0, 1, 1]
    ds, stats = data.classification_dataset(texts, labels, wp_tokenizer, 16, 8, shuffle=False)
    ((x, y, w),) = _batches(ds)
    assert set(x) == {"token_ids", "padding_mask", "segment_ids"}
    assert x["token_ids"].shape == (4, 16) and y.tolist() == [1, 0, 1, 1]
    assert (x["token_ids"][:, 0] == wp_tokenizer.cls_id).all()
    good = wp_tokenizer.tokenize("good film").numpy().tolist()
    assert x["token_ids"][0].tolist() == [3, *good, 4] + [0] * (14 - len(good))
    assert x["token_ids"][1, 1 + len(good) // 2] != 0  # invalid bytes were replaced
    assert x["token_ids"][2, -1] == wp_tokenizer.sep_id  # truncated, still framed
    s = stats.as_dict()
    assert s["skipped_empty"] == 2 and s["replaced_invalid_utf8"] == 1 and s["truncated"] == 1
    assert s["examples"] == 4 and 0 < s["padding_fraction"] < 1


def test_token_classification_first_subword(toy_wordpiece):
    tokens = [["a", "playing", "x"], ["playing", "b"]]
    tags = [["O", "B-x", "O"], ["B-y", "O"]]
    ds, _ = data.token_classification_dataset(tokens, tags, toy_wordpiece, 8, 2, shuffle=False,
                                              label_vocabulary=["O", "B-x", "B-y"])  # fmt: skip
    ((x, y, w),) = _batches(ds)
    np.testing.assert_array_equal(
        x["token_ids"], [[3, 5, 8, 9, 10, 4, 0, 0], [3, 8, 9, 6, 4, 0, 0, 0]]
    )
    np.testing.assert_array_equal(y, [[0, 0, 1, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(w, [[0, 1, 1, 0, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0, 0]])


def test_same_seed_same_batches_and_disjoint_shards(sp_tokenizer, text_pairs):
    texts = [t for _, t in text_pairs]
    labels = list(range(len(texts)))

    def run(**kw):
        ds, _ = data.classification_dataset(texts, labels, sp_tokenizer, 48, 16, **kw)
        return _batches(ds)

    a, b = run(seed=5), run(seed=5)
    _assert_same(a, b)
    c = run(seed=6)
    assert any((p[1] != q[1]).any() for p, q in zip(a, c))
    ds, _ = data.masked_lm_dataset(texts, sp_tokenizer, 48, 16, seed=9)
    ds2, _ = data.masked_lm_dataset(texts, sp_tokenizer, 48, 16, seed=9)
    _assert_same(_batches(ds), _batches(ds2))
    shards = [run(seed=1, num_shards=3, shard_index=i) for i in range(3)]
    ids = [{int(v) for _, y, _ in s for v in y} for s in shards]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert set().union(*ids) == set(labels)
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=2,
                                     num_replicas_in_sync=3)  # fmt: skip
    ds, _ = data.classification_dataset(texts, labels, sp_tokenizer, 48, 48, seed=1,
                                        input_context=ctx)  # fmt: skip
    assert {int(v) for _, y, _ in _batches(ds) for v in y} == ids[2]
    # One pipeline feeding two replicas: per-replica batches, as
    # `distribute_datasets_from_function` requires (global 48 -> 24).
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                     num_replicas_in_sync=2)  # fmt: skip
    ds, _ = data.classification_dataset(texts, labels, sp_tokenizer, 48, 48, seed=1,
                                        shuffle=False, input_context=ctx)  # fmt: skip
    assert next(iter(ds))[1].shape[0] == 24


def test_bucketing_cuts_padding(sp_tokenizer, text_pairs):
    pairs = text_pairs
    _, plain = data.seq2seq_dataset(pairs, sp_tokenizer, sp_tokenizer, 96, 96, 16, seed=0)
    ds, bucketed = data.seq2seq_dataset(pairs, sp_tokenizer, sp_tokenizer, 96, 96, 16, seed=0,
                                        bucketing=True)  # fmt: skip
    _batches(_)
    _batches(ds)
    assert bucketed.padding_fraction < plain.padding_fraction - 0.1


def test_static_bucketing_gives_fixed_shapes_and_token_budget(sp_tokenizer, text_pairs):
    """'static' buckets: one shape per bucket, every example kept, about batch x max tokens."""
    pairs = text_pairs
    ds, stats = data.seq2seq_dataset(pairs, sp_tokenizer, sp_tokenizer, 96, 96, 8, seed=0,
                                     bucketing="static", bucket_boundaries=[24, 48])  # fmt: skip
    shapes, examples = set(), 0
    for x, y, w in _batches(ds):
        length = x["encoder_token_ids"].shape[1]
        assert length in (24, 48, 96)
        # Source and target share the bucket length: the longer of the two picks the bucket.
        assert x["decoder_token_ids"].shape[1] == y.shape[1] == w.shape[1] == length
        assert y.shape[0] <= 8 * 96 // length
        shapes.add(length)
        examples += y.shape[0]
    assert examples == len(pairs) and len(shapes) >= 2
    assert stats.padding_fraction < 0.5
    with pytest.raises(ValueError, match="must be False, True or 'static'"):
        data.seq2seq_dataset(pairs, sp_tokenizer, bucketing="fixed")


def test_bad_arguments(sp_tokenizer, toy_wordpiece):
    with pytest.raises(ValueError, match="batch_size"):
        data.classification_dataset(["a"], [0], sp_tokenizer, 8, 0)
    with pytest.raises(ValueError, match="shard_index"):
        data.classification_dataset(["a"], [0], sp_tokenizer, 8, 2, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="different lengths"):
        data.classification_dataset(["a", "b"], [0], sp_tokenizer, 8, 2)
    with pytest.raises(ValueError, match="mask_rate"):
        data.masked_lm_dataset(["a"], sp_tokenizer, 8, 2, mask_rate=1.5)
    with pytest.raises(ValueError, match="label_vocabulary"):
        data.token_classification_dataset([["a"]], [["O"]], toy_wordpiece, 8, 1)
    with pytest.raises(ValueError, match="no examples"):
        data.causal_lm_dataset([], sp_tokenizer, 8, 2)
