"""`TokenClassifierPreprocessor` and a `TokenClassifier` that takes text: label alignment, inputs,
errors, fit / predict on strings and word lists, `.keras` round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm import preprocessors
from kerasllm.models import Encoder, SequenceClassifier, TokenClassifier
from kerasllm.preprocessors import TextClassifierPreprocessor, TokenClassifierPreprocessor
from kerasllm.testing import tiny_config

TEXTS = ["John lives in Paris", "Mary saw a dog in the park", "the cat sat"]
WORDS = [t.split() for t in TEXTS]
TAGS = [[1, 0, 0, 2], [1, 0, 0, 0, 0, 0, 2], [0, 0, 0]]


@pytest.fixture(scope="module")
def tokenizer():
    return kt.train_wordpiece(TEXTS * 10, vocabulary_size=60)


def _tagger(tokenizer, sequence_length=16, seed=0) -> TokenClassifier:
    keras.utils.set_random_seed(seed)
    encoder = Encoder(
        **tiny_config(num_layers=1, vocabulary_size=tokenizer.vocabulary_size, pooler=False)
    )
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    return TokenClassifier(encoder, num_classes=3, dropout=0.0, preprocessor=pre)


def test_labels_sit_on_each_words_first_sub_word(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=16)
    x, y, w = pre(["John lives in Pariss"], [[1, 0, 0, 2]])
    pieces = [tokenizer.tokenize(word).numpy().tolist() for word in ["John", "lives", "in"]]
    last = tokenizer.tokenize(" Pariss").numpy().tolist()
    assert len(last) > 1  # a word of several sub-words: only the first one is labelled
    ids = [tokenizer.cls_id, *sum(pieces, []), *last, tokenizer.sep_id]
    assert x["token_ids"].numpy()[0].tolist() == ids
    starts = [1, 2, 3, 4]
    assert y.numpy()[0].tolist() == [{1: 1, 4: 2}.get(i, 0) for i in range(len(ids))]
    assert w.numpy()[0].tolist() == [float(i in starts) for i in range(len(ids))]


def test_texts_and_word_lists_give_the_same_batch(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=8)
    from_text = pre(TEXTS, TAGS)
    from_lists = pre(WORDS, tf.ragged.constant(TAGS))
    from_ragged = pre(tf.ragged.constant(WORDS), TAGS)
    for got in (from_lists, from_ragged):
        tf.nest.map_structure(
            lambda a, b: np.testing.assert_array_equal(a.numpy(), b.numpy()), got, from_text
        )
    # Truncated: the long text keeps the words whose first sub-word fits in 8 - 2 tokens.
    assert from_text[0]["token_ids"].shape == (3, 8)
    assert from_text[2].numpy()[1].sum() == 6


def test_blank_and_tokenless_words_get_no_label(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=16)
    x, y, w = pre([["", "John", " ", "\u200b", "Paris"]], [[2, 1, 2, 2, 2]])
    assert x["token_ids"].numpy()[0].tolist()[0] == tokenizer.cls_id
    assert w.numpy()[0].sum() == 2 and sorted(y.numpy()[0][w.numpy()[0] == 1]) == [1, 2]
    # A text without any token: one filler token, nothing to classify.
    x, y, w = pre([""], [[]])
    assert x["token_ids"].numpy().tolist() == [[tokenizer.cls_id, 0, tokenizer.sep_id]]
    assert not w.numpy().any()


def test_sample_weights_per_text_and_per_word(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=16)
    _, _, base = pre(TEXTS, TAGS)
    _, _, per_text = pre(TEXTS, TAGS, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(per_text.numpy(), base.numpy() * np.array([[0.5], [1.0], [2.0]]))
    weights = [[float(j) for j in range(len(t))] for t in TAGS]
    _, y, per_word = pre(TEXTS, TAGS, weights)
    got = [row[b == 1].tolist() for row, b in zip(per_word.numpy(), base.numpy())]
    assert got == weights


def test_one_string_gives_an_unbatched_example(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=16)
    x, y, w = pre("John lives", [1, 0])
    batched = pre(["John lives"], [[1, 0]])
    assert x["token_ids"].shape.rank == 1
    np.testing.assert_array_equal(x["token_ids"].numpy(), batched[0]["token_ids"].numpy()[0])
    np.testing.assert_array_equal(y.numpy(), batched[1].numpy()[0])


def test_bad_inputs_are_named(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=16)
    with pytest.raises(ValueError, match="one value per word"):
        pre(["John lives"], [[1]])
    with pytest.raises(ValueError, match="one value per word"):
        pre(["John lives", "a"], [[1, 0]])
    with pytest.raises(ValueError, match="non-negative class ids"):
        pre(["John lives"], [[1, -1]])
    with pytest.raises(TypeError, match=r"`x\[1\]` must be a list of words"):
        pre([["John"], ["lives", 3]])
    with pytest.raises(ValueError, match="needs labels"):
        pre(["John"], sample_weight=[1.0])
    with pytest.raises(ValueError, match="no room for text"):
        TokenClassifierPreprocessor(tokenizer, sequence_length=2)(["John"])
    # In a graph (a `tf.data` map) the same checks fail the element.
    ds = tf.data.Dataset.from_tensor_slices((["John lives"], tf.ragged.constant([[1]])))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per word"):
        list(ds.batch(1).map(pre))
    # A sequence classifier's preprocessor refuses word lists (it would flatten them).
    with pytest.raises(TypeError, match="not word lists"):
        TextClassifierPreprocessor(tokenizer, 16)(tf.ragged.constant(WORDS))


def test_config_round_trip(tokenizer):
    pre = TokenClassifierPreprocessor(tokenizer, 20, pad_to_sequence_length=True)
    clone = TokenClassifierPreprocessor.from_config(pre.get_config())
    assert (clone.sequence_length, clone.pad_to_sequence_length) == (20, True)
    assert pre(["John"])["token_ids"].shape == (1, 20)


def test_for_task_builds_it_for_a_token_classifier(tokenizer):
    model = _tagger(tokenizer)
    pre = preprocessors.for_task(model, tokenizer, sequence_length=12)
    assert isinstance(pre, TokenClassifierPreprocessor) and pre.sequence_length == 12


def test_fit_evaluate_and_predict_per_word_on_strings(tokenizer):
    model = _tagger(tokenizer)
    model.compile(run_eagerly=True)
    history = model.fit(TEXTS, TAGS, epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    loss, accuracy = model.evaluate(WORDS, TAGS, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    logits = model.predict(TEXTS + [""], batch_size=2, verbose=0)
    assert logits.shape == (4, 14, 3)
    # One row per word: the model's logits at each word's first sub-word, NaN after the words.
    x, _, w = model.preprocessor(TEXTS, TAGS)
    per_token = keras.ops.convert_to_numpy(model(x))
    for i, words in enumerate(WORDS):
        want = per_token[i][w.numpy()[i] == 1]
        np.testing.assert_allclose(logits[i, : len(words)], want, atol=1e-5)
        assert np.isnan(logits[i, len(words) :]).all()
    assert np.isnan(logits[3]).all()
    assert model.predict([], verbose=0).shape == (0, 14, 3)
    # A tf.data of texts (labels, if any, are ignored by predict).
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    np.testing.assert_allclose(model.predict(ds, verbose=0), logits[:3], atol=1e-6)


def test_keras_file_round_trip_predicts_identically_from_strings(tokenizer, tmp_path):
    model = _tagger(tokenizer)
    model.compile(run_eagerly=True)
    model.fit(WORDS, TAGS, epochs=1, verbose=0)
    path = tmp_path / "tagger.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.preprocessor, TokenClassifierPreprocessor)
    assert loaded.preprocessor.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    texts = ["Mary lives in Paris", "", "the cat " * 20, "héllo 映画 😀", b"bad \xff film"]
    np.testing.assert_array_equal(loaded.predict(texts, verbose=0), model.predict(texts, verbose=0))


def test_sequence_classifier_predict_is_unchanged_by_the_hook(tokenizer):
    keras.utils.set_random_seed(0)
    encoder = Encoder(**tiny_config(num_layers=1, vocabulary_size=tokenizer.vocabulary_size))
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=16)
    clf = SequenceClassifier(encoder, num_classes=2, dropout=0.0, preprocessor=pre)
    want = keras.ops.convert_to_numpy(clf(pre(TEXTS)))
    np.testing.assert_allclose(clf.predict(TEXTS, verbose=0), want, atol=1e-6)
    labelled = tf.data.Dataset.from_tensor_slices((TEXTS, [0, 1, 0])).batch(2)
    np.testing.assert_allclose(clf.predict(labelled, verbose=0), want, atol=1e-6)
    with pytest.raises(TypeError, match="not word lists"):
        clf.predict(WORDS, verbose=0)
