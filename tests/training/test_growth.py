"""Depth growth: a deeper model starts as the trained shallower one, then trains its new layers."""

import numpy as np
import pytest
import tensorflow as tf

from kerasllm import zoo
from kerasllm.testing import TINY, decoder_inputs, seq2seq_inputs
from kerasllm.training import grow_depth

PRE_NORM = {**TINY, "norm_first": True}


def perturbed(model, seed=0):
    """Gives every weight a random value, so equality after growth means the weights were copied."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "seed_generator" not in variable.path:
            variable.assign(rng.normal(0, 0.2, variable.shape).astype(variable.dtype))
    return model


def seq2seq(**overrides):
    return zoo.get("transformer_tiny", task="seq2seq_lm", weights=None, **{**PRE_NORM, **overrides})


def test_grown_seq2seq_model_computes_what_the_small_one_did_then_trains_the_new_layers():
    small = perturbed(seq2seq(num_layers=1, num_decoder_layers=1))
    big = perturbed(seq2seq(num_layers=2, num_decoder_layers=3), seed=1)
    inputs = seq2seq_inputs(source_lengths=[9, 5], target_lengths=[7, 4])

    added = grow_depth(big, small)

    assert added == ["decoder_layer_1", "decoder_layer_2", "encoder_layer_1"]
    np.testing.assert_allclose(big(inputs), small(inputs), rtol=1e-5, atol=1e-5)
    # The new layers are not dead: their zeroed output projections get gradients.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(big(inputs)))
    output = next(
        v
        for v in big.trainable_variables
        if v.path.startswith("decoder_layer_2/feed_forward/output/kernel")
    )
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, output)))) > 0


def test_grown_causal_model_computes_what_the_small_one_did():
    small = perturbed(
        zoo.get("gpt_tiny", task="causal_lm", weights=None, **{**PRE_NORM, "num_layers": 1})
    )
    big = zoo.get("gpt_tiny", task="causal_lm", weights=None, **{**PRE_NORM, "num_layers": 2})
    inputs = decoder_inputs(lengths=[8, 5])

    assert grow_depth(big, small) == ["decoder_layer_1"]
    np.testing.assert_allclose(big(inputs), small(inputs), rtol=1e-5, atol=1e-5)


def test_growth_refuses_what_would_not_be_the_same_function():
    small = seq2seq(num_layers=1, num_decoder_layers=1)
    with pytest.raises(ValueError, match="pre-norm"):
        grow_depth(seq2seq(num_layers=2, norm_first=False), seq2seq(num_layers=1, norm_first=False))
    with pytest.raises(ValueError, match="shape .* growth changes depth only"):
        grow_depth(seq2seq(num_layers=2, intermediate_dim=64), small)
    with pytest.raises(ValueError, match="lacks 16 weight"):
        grow_depth(small, seq2seq(num_layers=2, num_decoder_layers=1))
