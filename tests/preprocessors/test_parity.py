"""One framing from training to serving: the preprocessor (eagerly and as a `tf.data` map), the
`kerasllm.data` pipelines and the exported SavedModel signatures agree on a fuzz set, for
sequence classification (single texts and pairs) and token classification."""

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.data as kd
import kerasllm.tokenizers as kt
from kerasllm import bundle
from kerasllm.export import export
from kerasllm.models import Encoder, SequenceClassifier, TokenClassifier
from kerasllm.preprocessors import TextClassifierPreprocessor, TokenClassifierPreprocessor
from kerasllm.testing import tiny_config

CORPUS = ["the cat sat on the mat", "what a good film", "a dog ran in the park"] * 10
SEQUENCE_LENGTH = 12

# Empty, blank, long (truncated), Unicode (accents, CJK, emoji, right-to-left, zero-width,
# non-breaking space), control characters, invalid UTF-8, framing-token look-alikes.
FUZZ = [
    "",
    "   \t\n ",
    "the cat sat",
    " ".join(["the cat sat on the mat"] * 30),
    "héllo wörld 映画 😀🎉👍🏽 🇫🇷",
    "שלום עולם مرحبا بالعالم",
    "\u200f\u200b a\u00a0good\tfilm \n",
    "control\x00chars\x07\x1b[31m\x7f here\x1c there",
    b"bad \xff\xfe film \xc3",
    "[CLS] a [SEP] dog [MASK]",
]


@pytest.fixture(scope="module")
def wordpiece():
    return kt.train_wordpiece(CORPUS, vocabulary_size=80)


@pytest.fixture(scope="module")
def byte_bpe():
    return kt.train_byte_bpe(CORPUS, vocabulary_size=300)


def _encoder(tokenizer) -> Encoder:
    return Encoder(
        **tiny_config(num_layers=1, vocabulary_size=tokenizer.vocabulary_size, pooler=True)
    )


def _rows(x) -> list[list[int]]:
    """The real tokens of each row of a batch."""
    ids, mask = np.asarray(x["token_ids"]), np.asarray(x["padding_mask"])
    return [row[m == 1].tolist() for row, m in zip(ids, mask)]


def _pipeline_batch(dataset) -> tuple:
    (batch,) = list(dataset)  # one batch: every kept example
    return tuple(tf.nest.map_structure(lambda t: t.numpy(), batch))


def _as_str(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


# ------------------------------------------------------------------------ classification
@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pair"])
def test_classification_ids_agree_eager_tf_data_and_pipeline(wordpiece, pairs):
    pre = TextClassifierPreprocessor(wordpiece, SEQUENCE_LENGTH)
    x = (FUZZ, FUZZ[::-1]) if pairs else FUZZ
    eager = pre(x)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(len(FUZZ))
    # A pair is one `x`: a dataset of `(a, b)` elements maps as `pre((a, b))`.
    (mapped,) = list(dataset.map(lambda *texts: pre(texts if pairs else texts[0])))
    for key in eager:
        np.testing.assert_array_equal(mapped[key].numpy(), eager[key].numpy())
    assert max(map(len, _rows(eager))) == SEQUENCE_LENGTH  # the long text was truncated
    # Training skips texts that give no token (in either text of a pair); the others are
    # framed identically, segment ids included.
    parts = x if pairs else (x,)
    kept = [
        i
        for i in range(len(FUZZ))
        if all(len(wordpiece.tokenize(_as_str(p[i])).numpy()) for p in parts)
    ]
    texts = tuple([p[i] for i in kept] for p in parts) if pairs else [FUZZ[i] for i in kept]
    data, _ = kd.classification_dataset(
        texts, kept, wordpiece, SEQUENCE_LENGTH, batch_size=len(FUZZ), shuffle=False
    )
    trained, labels, _ = _pipeline_batch(data)
    assert labels.tolist() == kept
    assert _rows(trained) == [_rows(eager)[i] for i in kept]
    segments = [
        row[m == 1].tolist() for row, m in zip(trained["segment_ids"], trained["padding_mask"])
    ]
    want = [
        eager["segment_ids"].numpy()[i][eager["padding_mask"].numpy()[i] == 1].tolist()
        for i in kept
    ]
    assert segments == want
    if pairs:
        assert any(1 in row for row in segments)


@pytest.fixture(scope="module")
def classifier_export(wordpiece, tmp_path_factory):
    model = SequenceClassifier(_encoder(wordpiece), num_classes=3, dropout=0.0)
    item = bundle.Bundle(model, {"text": wordpiece}, {"sequence_length": SEQUENCE_LENGTH})
    path = export(item, tmp_path_factory.mktemp("classifier") / "classifier")
    return model, tf.saved_model.load(str(path))


def test_classification_export_serves_what_the_preprocessor_feeds(wordpiece, classifier_export):
    model, loaded = classifier_export
    model.preprocessor = TextClassifierPreprocessor(wordpiece, SEQUENCE_LENGTH)
    try:
        want = tf.nn.softmax(model.predict(FUZZ, verbose=0)).numpy()
    finally:
        model.preprocessor = None
    served = loaded.signatures["serving_default"](text=tf.constant(FUZZ))
    np.testing.assert_allclose(served["probabilities"].numpy(), want, atol=1e-5)
    # The same ids through the client-tokenized signature.
    x = TextClassifierPreprocessor(wordpiece, SEQUENCE_LENGTH)(FUZZ)
    by_ids = loaded.signatures["classify_token_ids"](
        token_ids=x["token_ids"], padding_mask=x["padding_mask"]
    )
    np.testing.assert_allclose(by_ids["probabilities"].numpy(), want, atol=1e-5)


# ------------------------------------------------------------------ token classification
def test_token_classification_ids_agree_eager_tf_data_and_pipeline(byte_bpe):
    pre = TokenClassifierPreprocessor(byte_bpe, SEQUENCE_LENGTH)
    words = [[w for w in row] for row in pre.words(FUZZ).to_list()]  # ASCII-whitespace split
    labels = [[(i + j) % 3 for j in range(len(row))] for i, row in enumerate(words)]
    x, y, w = pre(FUZZ, labels)
    # The same alignment from pre-split words, and as a `tf.data` map (ragged batches).
    from_words = pre(words, labels)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(words, tf.string), tf.ragged.constant(labels, tf.int32))
    )
    (mapped,) = list(dataset.ragged_batch(len(FUZZ)).map(pre))
    for got in (from_words, mapped):
        for key in x:
            np.testing.assert_array_equal(got[0][key].numpy(), x[key].numpy())
        np.testing.assert_array_equal(got[1].numpy(), y.numpy())
        np.testing.assert_array_equal(got[2].numpy(), w.numpy())
    assert max(map(len, _rows(x))) == SEQUENCE_LENGTH  # the long text was truncated
    # Training skips examples without any token; the others get the same ids, labels, weights.
    kept = [i for i, row in enumerate(_rows(x)) if w.numpy()[i].any()]
    data, _ = kd.token_classification_dataset(
        [words[i] for i in kept],
        [labels[i] for i in kept],
        byte_bpe,
        SEQUENCE_LENGTH,
        batch_size=len(FUZZ),
        shuffle=False,
    )
    trained, trained_y, trained_w = _pipeline_batch(data)
    assert _rows(trained) == [_rows(x)[i] for i in kept]
    width = trained_y.shape[1]
    for row, i in enumerate(kept):
        length = int(x["padding_mask"].numpy()[i].sum())
        assert trained_y[row, :length].tolist() == y.numpy()[i, :length].tolist()
        assert trained_w[row, :length].tolist() == w.numpy()[i, :length].tolist()
        assert not trained_w[row, length:width].any()


@pytest.fixture(scope="module")
def tagger_export(byte_bpe, tmp_path_factory):
    model = TokenClassifier(_encoder(byte_bpe), num_classes=3, dropout=0.0)
    item = bundle.Bundle(model, {"text": byte_bpe}, {"sequence_length": SEQUENCE_LENGTH})
    path = export(item, tmp_path_factory.mktemp("tagger") / "tagger")
    return model, tf.saved_model.load(str(path))


def test_token_classification_export_serves_what_predict_returns(byte_bpe, tagger_export):
    model, loaded = tagger_export
    pre = TokenClassifierPreprocessor(byte_bpe, SEQUENCE_LENGTH)
    model.preprocessor = pre
    try:
        logits = model.predict(FUZZ, verbose=0)  # per word, NaN where no word is classified
    finally:
        model.preprocessor = None
    served = loaded.signatures["serving_default"](text=tf.constant(FUZZ))
    words = pre.words(FUZZ).to_list()
    served_words = served["words"].numpy().tolist()
    assert [row[: len(w)] for row, w in zip(served_words, words)] == words
    class_ids = served["class_ids"].numpy()
    # `predict` has one column per word that fits in `sequence_length` tokens; the served
    # words past it are not classified either.
    assert logits.shape[1] == SEQUENCE_LENGTH - 2 and (class_ids[:, logits.shape[1] :] == -1).all()
    width = min(class_ids.shape[1], logits.shape[1])
    class_ids, logits = class_ids[:, :width], logits[:, :width]
    found = ~np.isnan(logits[..., 0])
    assert found.any() and not np.isnan(logits[found]).any()
    np.testing.assert_array_equal(class_ids >= 0, found)
    np.testing.assert_array_equal(class_ids[found], logits[found].argmax(-1))
    probabilities = served["probabilities"].numpy()[:, :width][found]
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits[found]).numpy(), atol=1e-5)


def test_classification_dataset_pairs_are_a_tuple_of_two_batches(wordpiece):
    with pytest.raises(ValueError, match="as many texts each"):
        kd.classification_dataset((["a dog"], ["a cat", "the mat"]), [0], wordpiece, 8, 1)
    # A tuple of two strings is two single texts, as a list is.
    data, _ = kd.classification_dataset(
        ("a dog", "the cat"), [0, 1], wordpiece, 8, 2, shuffle=False
    )
    x, _, _ = _pipeline_batch(data)
    assert not x["segment_ids"].any()
    assert _rows(x) == _rows(TextClassifierPreprocessor(wordpiece, 8)(["a dog", "the cat"]))
