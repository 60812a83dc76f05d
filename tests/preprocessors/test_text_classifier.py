"""`TextClassifierPreprocessor`: framing parity with training and serving, pairs, contexts."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.data as kd
import kerasllm.tokenizers as kt
from kerasllm.export.text import encode
from kerasllm.preprocessors import TextClassifierPreprocessor, boundary_ids, pack_segments

CORPUS = ["a good film", "a bad film", "the cat sat on the mat", "what a ride"] * 10

# Empty, blank, long, Unicode (accents, CJK, emoji, right-to-left, zero-width), punctuation.
FUZZ = [
    "",
    "   ",
    "a good film",
    " ".join(["the cat sat on the mat"] * 40),
    "héllo wörld 映画 😀 مرحبا بالعالم",
    "\u200f\u200b a\u00a0bad\tfilm \n",
    "[CLS] a [SEP] bad [MASK]",
    "!!!???...",
]


@pytest.fixture(scope="module")
def tokenizer():
    return kt.train_wordpiece(CORPUS, vocabulary_size=60)


def _rows(x):
    """The real tokens of each row."""
    ids, mask = x["token_ids"].numpy(), x["padding_mask"].numpy()
    return [row[m == 1].tolist() for row, m in zip(ids, mask)]


def test_single_texts_equal_the_export_framing(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=12)
    x = pre(FUZZ)
    first, last = boundary_ids(tokenizer)
    ids, mask, _ = encode(tokenizer, tf.constant(FUZZ), 12, first, last)
    np.testing.assert_array_equal(x["token_ids"].numpy(), ids.numpy())
    np.testing.assert_array_equal(x["padding_mask"].numpy(), mask.numpy())
    assert not x["segment_ids"].numpy().any()


def test_single_texts_equal_the_training_pipeline_framing(tokenizer):
    # The pipeline drops texts without any token; every other one is framed identically.
    texts = [t for t in FUZZ if len(tokenizer.tokenize(t).numpy())]
    ds, _ = kd.classification_dataset(
        texts, [0] * len(texts), tokenizer, 12, batch_size=len(texts), shuffle=False
    )
    x, _, _ = next(iter(ds))
    assert _rows(TextClassifierPreprocessor(tokenizer, sequence_length=12)(texts)) == _rows(x)


@pytest.mark.parametrize("truncate", ["round_robin", "waterfall"])
def test_pairs_equal_keras_hub_multi_segment_packer(tokenizer, truncate):
    a = ["a good film", " ".join(["the cat sat"] * 10), "what a ride", "a"]
    b = [" ".join(["the mat"] * 10), "a bad film", "héllo 映画", "the cat sat on the mat"]
    pre = TextClassifierPreprocessor(
        tokenizer, sequence_length=10, truncate=truncate, pad_to_sequence_length=True
    )
    x = pre((a, b))
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=10,
        start_value=tokenizer.cls_id,
        end_value=tokenizer.sep_id,
        truncate=truncate,
    )
    ids, segments = packer((tokenizer.tokenize(a), tokenizer.tokenize(b)))
    np.testing.assert_array_equal(x["token_ids"].numpy(), keras.ops.convert_to_numpy(ids))
    np.testing.assert_array_equal(x["segment_ids"].numpy(), keras.ops.convert_to_numpy(segments))
    np.testing.assert_array_equal(x["padding_mask"].numpy(), (x["token_ids"].numpy() != 0) * 1)


def test_pair_layout_and_round_robin_cuts_the_longer_side(tokenizer):
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    a_ids = tokenizer.tokenize("a good film").numpy().tolist()
    long_b = " ".join(["the cat sat"] * 5)
    x = TextClassifierPreprocessor(tokenizer, sequence_length=9)((["a good film"], [long_b]))
    b_ids = tokenizer.tokenize(long_b).numpy().tolist()
    assert x["token_ids"].numpy()[0].tolist() == [cls, *a_ids, sep, *b_ids[:3], sep]
    assert x["segment_ids"].numpy()[0].tolist() == [0] * 5 + [1] * 4


def test_same_ids_in_tf_data_eagerly_and_in_tf_function(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=16)
    eager = pre(FUZZ)
    traced = tf.function(lambda t: pre(t))(tf.constant(FUZZ))
    batched = next(iter(tf.data.Dataset.from_tensor_slices(FUZZ).batch(len(FUZZ)).map(pre)))
    unbatched = list(tf.data.Dataset.from_tensor_slices(FUZZ).map(pre))
    for out in (traced, batched):
        for key in eager:
            np.testing.assert_array_equal(out[key].numpy(), eager[key].numpy())
    for row, single in zip(_rows(eager), unbatched):
        assert single["token_ids"].numpy()[single["padding_mask"].numpy() == 1].tolist() == row


def test_labels_and_weights_pass_through_like_pack_x_y_sample_weight(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=8)
    x = pre(["a good film"])
    assert isinstance(x, dict)
    x, y = pre(["a good film"], tf.constant([1]))
    assert y.numpy().tolist() == [1]
    _, y, w = pre(["a good film"], tf.constant([1]), tf.constant([0.5]))
    assert w.numpy().tolist() == [0.5]


def test_empty_batch_gives_one_padding_column(tokenizer):
    x = TextClassifierPreprocessor(tokenizer, sequence_length=8)([])
    assert x["token_ids"].shape == (0, 1) and x["padding_mask"].shape == (0, 1)


def test_long_text_is_cut_to_sequence_length(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=6, pad_to_sequence_length=True)
    x = pre([FUZZ[3], "a"])
    assert x["token_ids"].shape == (2, 6)
    assert x["token_ids"].numpy()[0, -1] == tokenizer.sep_id


def test_bad_inputs_are_named(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=8)
    with pytest.raises(TypeError, match="`x` must be strings"):
        pre(["a", 3])
    with pytest.raises(ValueError, match="tuple of two"):
        pre((["a"], ["b"], ["c"]))
    with pytest.raises(ValueError, match="no room for text"):
        TextClassifierPreprocessor(tokenizer, sequence_length=2)(["a"])
    with pytest.raises(ValueError, match="`truncate` must be one of"):
        TextClassifierPreprocessor(tokenizer, truncate="longest")
    with pytest.raises(ValueError, match="has no tokenizer"):
        TextClassifierPreprocessor()(["a"])
    with pytest.raises(TypeError, match="kerasllm tokenizer"):
        TextClassifierPreprocessor(tokenizer="bert")


def test_config_round_trip_keeps_options(tokenizer):
    pre = TextClassifierPreprocessor(tokenizer, 20, truncate="waterfall")
    clone = TextClassifierPreprocessor.from_config(pre.get_config())
    assert (clone.sequence_length, clone.truncate, clone.tokenizer) == (20, "waterfall", None)


def test_framing_without_cls_and_sep_uses_start_and_end():
    tok = kt.train_byte_bpe(CORPUS * 5, vocabulary_size=300)
    assert tok.cls_id is None and tok.sep_id is None
    first, last = boundary_ids(tok)
    assert (first, last) == (tok.start_id, tok.end_id)
    x = pack_segments([tok.tokenize(["a good film"])], 16, first, last)
    row = x["token_ids"].numpy()[0].tolist()
    assert row[0] == first and row[-1] == last
