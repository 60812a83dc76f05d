"""Objectives: losses, normalizers and metrics as additive per-replica sums."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasllm.training import objectives
from kerasllm.training.objectives import cross_entropy


def test_label_smoothing_matches_keras_categorical_crossentropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 11)).astype("float32")
    labels = rng.integers(0, 11, (3, 5))
    loss, nll = cross_entropy(labels, logits, label_smoothing=0.1)
    expected = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction=None
    )(keras.ops.one_hot(labels, 11), logits)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits
    )
    np.testing.assert_allclose(nll, plain, rtol=1e-5)


def test_padding_is_weighted_out_and_sums_add_up_across_shards():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 6, 9)).astype("float32")
    labels = rng.integers(0, 9, (4, 6))
    weights = (np.arange(6)[None, :] < np.array([[6], [3], [1], [4]])).astype("float32")
    objective = objectives.get("causal_lm")
    whole = (
        objective.loss_sums(labels, logits, weights)[0] / objective.normalizers(labels, weights)[0]
    )
    # The same batch split over two "replicas": sums and normalizers add up exactly.
    halves = [slice(0, 2), slice(2, 4)]
    sums = sum(float(objective.loss_sums(labels[h], logits[h], weights[h])[0]) for h in halves)
    norms = sum(float(objective.normalizers(labels[h], weights[h])[0]) for h in halves)
    assert float(whole) == pytest.approx(sums / norms, rel=1e-6)
    # Changing logits at padded positions changes nothing.
    noisy = np.where(weights[..., None] > 0, logits, 1e3).astype("float32")
    assert float(objective.loss_sums(labels, noisy, weights)[0]) == pytest.approx(
        float(objective.loss_sums(labels, logits, weights)[0]), rel=1e-6
    )


def test_language_model_metrics():
    logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]]], "float32"))
    labels = np.array([[0, 0]])
    sums = objectives.get("seq2seq").metric_sums(labels, logits, np.array([[1.0, 1.0]], "float32"))
    results = objectives.get("seq2seq").results({k: v.numpy() for k, v in sums.items()})
    assert results["accuracy"] == pytest.approx(0.5)
    assert results["perplexity"] == pytest.approx(np.exp(-(np.log(0.5) + np.log(0.2)) / 2))


def test_masked_lm_with_next_sentence_prediction():
    objective = objectives.MaskedLM(next_sentence_prediction=True)
    rng = np.random.default_rng(2)
    outputs = {
        "mlm": rng.normal(size=(2, 3, 7)).astype("float32"),
        "nsp": np.array([[2.0, 0.0], [0.0, 2.0]], "float32"),
    }
    y = {"mask_ids": rng.integers(0, 7, (2, 3)), "next_sentence_label": np.array([0, 0])}
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    mlm_sum, nsp_sum = objective.loss_sums(y, outputs, weights)
    assert [float(n) for n in objective.normalizers(y, weights)] == [3.0, 2.0]
    mlm_only = objectives.MaskedLM().loss_sums(y["mask_ids"], outputs["mlm"], weights)[0]
    assert float(mlm_sum) == pytest.approx(float(mlm_only))
    expected_nsp = -np.log(tf.nn.softmax(outputs["nsp"]).numpy()[[0, 1], [0, 0]]).sum()
    assert float(nsp_sum) == pytest.approx(expected_nsp, rel=1e-5)
    sums = {k: v.numpy() for k, v in objective.metric_sums(y, outputs, weights).items()}
    assert objective.results(sums)["nsp_accuracy"] == 0.5
    with pytest.raises(ValueError, match="next_sentence_prediction"):
        objective.loss_sums(y["mask_ids"], outputs["mlm"], weights)


def test_classification_f1_and_accuracy():
    objective = objectives.get("classification")
    labels = np.array([1, 1, 0, 0, 1])
    predicted = np.array([1, 0, 0, 1, 1])
    logits = np.eye(2, dtype="float32")[predicted] * 5
    sums = {k: v.numpy() for k, v in objective.metric_sums(labels, logits, None).items()}
    results = objective.results(sums)
    assert results["accuracy"] == pytest.approx(3 / 5)
    precision, recall = 2 / 3, 2 / 3
    assert results["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_token_classification_macro_f1_ignores_the_outside_tag():
    objective = objectives.get("token_classification")
    labels = np.array([[0, 1, 2, 0]])
    logits = np.eye(3, dtype="float32")[np.array([[0, 1, 1, 0]])] * 5
    weights = np.array([[1, 1, 1, 0]], "float32")
    sums = {k: v.numpy() for k, v in objective.metric_sums(labels, logits, weights).items()}
    results = objective.results(sums)
    assert results["accuracy"] == pytest.approx(2 / 3)
    # Class 1: precision 1/2, recall 1 -> F1 2/3; class 2: F1 0; "O" (0) is left out.
    assert results["f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_unknown_objective_names_the_choices():
    with pytest.raises(ValueError, match="Did you mean 'masked_lm'"):
        objectives.get("maskedlm")
    with pytest.raises(ValueError, match="label_smoothing"):
        objectives.get("seq2seq", label_smoothing=1.5)
