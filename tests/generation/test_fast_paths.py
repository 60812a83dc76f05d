"""The decoding step's fast paths against the generic computations they replace."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kerasllm.generation.samplers import GreedySampler, first_argmax
from kerasllm.layers import MultiHeadAttention


@pytest.mark.parametrize("jit_compile", [False, True])
def test_first_argmax_equals_argmax_with_ties(jit_compile):
    rng = np.random.default_rng(0)
    # Rounded logits: many rows hold their maximum twice or more, so ties are exercised.
    logits = np.round(rng.normal(size=(64, 37)), 1).astype("float32")
    logits[3] = 0.0  # every entry tied: the first index wins
    assert (logits == logits.max(-1, keepdims=True)).sum(-1).max() > 1
    got = tf.function(first_argmax, jit_compile=jit_compile)(tf.constant(logits)).numpy()
    np.testing.assert_array_equal(got, np.argmax(logits, axis=-1))
    assert got.dtype == np.int32
    sampled = GreedySampler()(tf.constant(logits), seed=tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(sampled, np.argmax(logits, axis=-1))


def test_first_argmax_stays_in_range_on_nan():
    logits = tf.constant([[np.nan, np.nan, np.nan], [1.0, 3.0, 2.0]])
    got = first_argmax(logits).numpy()
    assert 0 <= got[0] < 3 and got[1] == 1


@pytest.mark.parametrize("with_bias", [False, True])
def test_single_query_attention_equals_generic_path(with_bias):
    """The one-query einsum path (every cached decoding step) equals the generic
    `dot_product_attention` path, with grouped heads, a padding mask and a position bias."""
    rng = np.random.default_rng(1)
    layer = MultiHeadAttention(num_heads=4, head_dim=8, num_key_value_heads=2)
    layer.build((2, 1, 16))
    query = tf.constant(rng.normal(size=(2, 1, 4, 8)), tf.float32)
    key = tf.constant(rng.normal(size=(2, 5, 2, 8)), tf.float32)
    value = tf.constant(rng.normal(size=(2, 5, 2, 8)), tf.float32)
    mask = tf.constant([[[True] * 3 + [False] * 2], [[True] * 5]])  # (B, 1, S)
    bias = tf.constant(rng.normal(size=(1, 4, 1, 5)), tf.float32) if with_bias else None
    # In cache layout, (B, kv_heads, S, head_dim), as decoding steps pass them.
    fast = layer._attend(
        query,
        tf.transpose(key, (0, 2, 1, 3)),
        tf.transpose(value, (0, 2, 1, 3)),
        mask,
        bias,
        training=False,
        heads_first=True,
    )
    np.testing.assert_allclose(
        fast.numpy(),
        layer._attend(query, key, value, mask, bias, training=False).numpy(),
        atol=1e-6,
    )
    # The generic path treats query rows independently: two copies of the query, row 0 kept.
    generic = layer._attend(
        tf.concat([query, query], 1),
        key,
        value,
        tf.concat([mask, mask], 1),
        None if bias is None else tf.concat([bias, bias], 2),
        training=False,
    )[:, :1]
    assert fast.shape == (2, 1, 4, 8)
    np.testing.assert_allclose(fast.numpy(), generic.numpy(), atol=1e-5)
