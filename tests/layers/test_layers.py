import numpy as np
import pytest

from kerasllm import layers


def test_tied_embedding_projects_with_transposed_matrix():
    embedding = layers.TokenEmbedding(10, 4)
    hidden = embedding(np.arange(3)[None])
    logits = embedding(hidden, reverse=True)
    np.testing.assert_allclose(logits, hidden @ embedding.embeddings.numpy().T, atol=1e-6)


@pytest.mark.parametrize("cls", [layers.SinusoidalPositionEmbedding, layers.PositionEmbedding])
def test_absolute_positions_respect_start_index(cls):
    layer = cls(32) if cls is layers.PositionEmbedding else cls()
    x = np.zeros((1, 10, 8), "float32")
    full = layer(x)
    np.testing.assert_allclose(layer(x[:, 4:6], start_index=4), full[:, 4:6], atol=1e-6)


def test_rotary_preserves_norm_and_relative_dot_products():
    rotary = layers.RotaryEmbedding()
    rng = np.random.default_rng(0)
    q = rng.normal(size=(1, 1, 1, 8)).astype("float32")
    k = rng.normal(size=(1, 1, 1, 8)).astype("float32")
    # <rot(q, m), rot(k, n)> depends only on m - n.
    a = np.sum(rotary(q, start_index=5) * rotary(k, start_index=2))
    b = np.sum(rotary(q, start_index=13) * rotary(k, start_index=10))
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(rotary(q, start_index=7)), np.linalg.norm(q), 1e-5)


def test_relative_position_buckets_match_t5():
    """Bucket ids of T5's reference `_relative_position_bucket` (32 buckets, 128 distance)."""
    bias = layers.RelativePositionBias(num_heads=1, num_buckets=32, max_distance=128)
    relative = np.array([-200, -128, -20, -8, -1, 0, 1, 7, 8, 20, 127, 500])
    got = np.asarray(bias._bucket(relative))
    # Computed with the published T5 formula (bidirectional): positive distances use the upper
    # 16 buckets, exact below 8, logarithmic up to 128, clipped above.
    want = np.array([15, 15, 10, 8, 1, 0, 17, 23, 24, 26, 31, 31])
    np.testing.assert_array_equal(got, want)
    causal = layers.RelativePositionBias(num_heads=1, bidirectional=False)
    np.testing.assert_array_equal(
        np.asarray(causal._bucket(np.array([1, 0, -3, -40]))), [0, 0, 3, 23]
    )


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="Unknown activation 'gelus'"):
        layers.FeedForward(8, activation="gelus")


def test_gated_feed_forward_activates_the_gate_projection():
    """`output(act(gate(x)) * intermediate(x))`, as the FeedForward docstring says: weights
    imported with the two projections swapped would give a different result."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 8)).astype("float32")
    layer = layers.FeedForward(16, activation="swiglu", use_bias=False)
    out = np.asarray(layer(x))
    inner = x @ layer.inner_dense.kernel.numpy()
    gate = x @ layer.gate_dense.kernel.numpy()
    silu = gate / (1.0 + np.exp(-gate))
    np.testing.assert_allclose(out, (silu * inner) @ layer.output_dense.kernel.numpy(), atol=1e-5)
    swapped_silu = inner / (1.0 + np.exp(-inner))
    swapped = (swapped_silu * gate) @ layer.output_dense.kernel.numpy()
    assert not np.allclose(out, swapped, atol=1e-3)
