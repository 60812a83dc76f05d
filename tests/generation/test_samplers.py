"""Token-choice rules of the samplers, run eagerly on hand-made logits."""

import numpy as np
import pytest
import tensorflow as tf

from kerasllm.generation import (
    BeamSampler,
    GreedySampler,
    RandomSampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)

ROWS = 4000  # one call draws every row independently: a cheap frequency estimate


def _draw(sampler, probabilities, seed=(1, 2)):
    logits = tf.math.log(tf.constant([probabilities] * ROWS, tf.float32))
    return sampler(logits, seed=tf.constant(seed)).numpy()


def test_greedy_is_argmax():
    logits = tf.constant([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0]])
    assert GreedySampler()(logits, seed=tf.constant([0, 0])).numpy().tolist() == [1, 0]


def test_random_sampler_follows_the_distribution():
    counts = np.bincount(_draw(RandomSampler(), [0.5, 0.3, 0.2]), minlength=3) / ROWS
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.2], atol=0.03)


def test_temperature_flattens_or_sharpens():
    flat = np.bincount(_draw(RandomSampler(temperature=100.0), [0.7, 0.2, 0.1]), minlength=3)
    sharp = np.bincount(_draw(RandomSampler(temperature=0.05), [0.7, 0.2, 0.1]), minlength=3)
    np.testing.assert_allclose(flat / ROWS, [1 / 3] * 3, atol=0.04)
    assert sharp[0] == ROWS


def test_top_k_samples_only_the_k_most_likely():
    probabilities = [0.05, 0.3, 0.05, 0.25, 0.2, 0.15]
    counts = np.bincount(_draw(TopKSampler(k=3), probabilities), minlength=6) / ROWS
    assert set(np.flatnonzero(counts)) == {1, 3, 4}
    # Renormalized among the three: 0.3 / 0.75, 0.25 / 0.75, 0.2 / 0.75.
    np.testing.assert_allclose(counts[[1, 3, 4]], [0.4, 1 / 3, 0.8 / 3], atol=0.03)


def test_top_p_samples_only_the_nucleus():
    # Mass before each sorted token: 0, 0.5, 0.8, 0.95; p = 0.75 keeps the first two.
    counts = np.bincount(_draw(TopPSampler(p=0.75), [0.15, 0.5, 0.05, 0.3]), minlength=4) / ROWS
    assert set(np.flatnonzero(counts)) == {1, 3}
    np.testing.assert_allclose(counts[[1, 3]], [0.625, 0.375], atol=0.03)
    # A cap on the candidates applies before the nucleus cut.
    capped = _draw(TopPSampler(p=0.99, k=1), [0.15, 0.5, 0.05, 0.3])
    assert set(capped.tolist()) == {1}


def test_same_seed_same_tokens_other_seed_other_tokens():
    sampler = TopKSampler(k=50)
    logits = tf.zeros((64, 100))
    a = sampler(logits, seed=tf.constant([3, 9])).numpy()
    b = sampler(logits, seed=tf.constant([3, 9])).numpy()
    c = sampler(logits, seed=tf.constant([3, 10])).numpy()
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_get_sampler_by_name_or_instance():
    assert isinstance(get_sampler("greedy"), GreedySampler)
    assert isinstance(get_sampler("top_p"), TopPSampler)
    assert get_sampler("beam").num_beams == 4
    custom = TopKSampler(k=2)
    assert get_sampler(custom) is custom


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: get_sampler("topk"), "Did you mean 'top_k'"),
        (lambda: get_sampler(3), "Unknown sampler 3"),
        (lambda: TopKSampler(k=0), "`k` must be a positive integer"),
        (lambda: TopPSampler(p=1.5), r"`p` must be in \(0, 1\]"),
        (lambda: RandomSampler(temperature=0), "`temperature` must be a positive number"),
        (lambda: BeamSampler(num_beams=0), "`num_beams` must be a positive integer"),
    ],
)
def test_invalid_settings_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_beam_sampler_is_not_a_row_sampler():
    with pytest.raises(TypeError, match="runs the beam search"):
        BeamSampler()(tf.zeros((1, 5)), seed=tf.constant([0, 0]))
