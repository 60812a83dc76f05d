import keras
import numpy as np
import pytest

from kerasllm.layers import MultiHeadAttention, masking


def _copy_into_keras_mha(ours: MultiHeadAttention, theirs: keras.layers.MultiHeadAttention):
    n, h = ours.num_heads, ours.head_dim
    for mine, their in (
        (ours.query_dense, theirs._query_dense),
        (ours.key_dense, theirs._key_dense),
        (ours.value_dense, theirs._value_dense),
    ):
        kernel, bias = mine.get_weights()
        their.set_weights([kernel.reshape(-1, n, h), bias.reshape(n, h)])
    kernel, bias = ours.output_dense.get_weights()
    theirs._output_dense.set_weights([kernel.reshape(n, h, -1), bias])


@pytest.mark.parametrize("cross", [False, True])
def test_matches_keras_multi_head_attention(cross):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 5, 16)).astype("float32")
    value = rng.normal(size=(2, 7, 16)).astype("float32") if cross else query
    mask = np.ones((2, 5, value.shape[1]), bool)
    mask[1, :, -2:] = False  # padding in the second row
    ours = MultiHeadAttention(num_heads=4, head_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4)
    expected_shape = theirs(query, value, attention_mask=mask).shape
    ours(query, value=value if cross else None, attention_mask=mask)
    _copy_into_keras_mha(ours, theirs)
    got = ours(query, value=value if cross else None, attention_mask=mask)
    want = theirs(query, value, attention_mask=mask)
    assert got.shape == expected_shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_grouped_query_equals_repeated_heads():
    """GQA with 2 kv heads == full MHA whose kv heads repeat each group's projection."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    gqa = MultiHeadAttention(num_heads=4, head_dim=4, num_key_value_heads=2)
    mha = MultiHeadAttention(num_heads=4, head_dim=4)
    gqa(x), mha(x)
    mha.query_dense.set_weights(gqa.query_dense.get_weights())
    mha.output_dense.set_weights(gqa.output_dense.get_weights())
    for src, dst in ((gqa.key_dense, mha.key_dense), (gqa.value_dense, mha.value_dense)):
        kernel, bias = src.get_weights()
        kernel = np.repeat(kernel.reshape(16, 2, 4), 2, axis=1).reshape(16, 16)
        bias = np.repeat(bias.reshape(2, 4), 2, axis=0).reshape(16)
        dst.set_weights([kernel, bias])
    np.testing.assert_allclose(gqa(x), mha(x), atol=1e-5)


def test_cache_update_matches_full_attention():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    layer = MultiHeadAttention(num_heads=4, head_dim=4, rotary_max_wavelength=10000.0)
    full = layer(x, attention_mask=masking.causal_mask(6, 6))
    cache = np.zeros((2, 2, 4, 6, 4), "float32")  # (B, 2, kv_heads, S, head_dim)
    steps = []
    for i in range(6):
        out, cache = layer(
            x[:, i : i + 1],
            attention_mask=masking.causal_mask(1, 6, i),
            cache=cache,
            cache_update_index=i,
        )
        steps.append(out)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_num_heads_must_divide_by_kv_heads():
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        MultiHeadAttention(num_heads=4, head_dim=4, num_key_value_heads=3)


def _grouped_attention_reference(layer: MultiHeadAttention, x: np.ndarray, mask: np.ndarray):
    """Grouped-query self-attention written out in numpy from the layer's weights: query head
    n reads key/value head n // (num_heads // num_key_value_heads)."""
    n, k, h = layer.num_heads, layer.num_key_value_heads, layer.head_dim
    batch, length, _ = x.shape

    def project(dense, heads):
        kernel, bias = dense.get_weights()
        return (x @ kernel + bias).reshape(batch, length, heads, h)

    q, key, value = (
        project(layer.query_dense, n),
        project(layer.key_dense, k),
        project(layer.value_dense, k),
    )
    kv_head = np.arange(n) // (n // k)
    logits = np.einsum("btnh,bsnh->bnts", q, key[:, :, kv_head]) * h**-0.5
    logits = np.where(mask[:, None], logits, -1e9)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = np.einsum("bnts,bsnh->btnh", weights, value[:, :, kv_head])
    kernel, bias = layer.output_dense.get_weights()
    return attended.reshape(batch, length, n * h) @ kernel + bias


@pytest.mark.parametrize(
    ("training", "dropout"),
    [(False, 0.0), (True, 1e-7)],
    ids=["fused_inference_path", "explicit_dropout_path"],
)
def test_grouped_query_attention_matches_reference_on_both_paths(training, dropout):
    """GQA through the fused op (inference) and through the explicit-probabilities path that
    training with attention dropout takes: both match the numpy reference. (The fused op groups
    heads by itself, so only the dropout path needs the key/value repeat; a dropout rate of
    1e-7 keeps that path while dropping, in practice, nothing.)"""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    mask = np.ones((2, 5, 5), bool)
    mask[1, :, -2:] = False  # padding in the second row
    layer = MultiHeadAttention(num_heads=4, head_dim=4, num_key_value_heads=2, dropout=dropout)
    got = layer(x, attention_mask=mask, training=training)
    np.testing.assert_allclose(got, _grouped_attention_reference(layer, x, mask), atol=1e-4)


def test_qkv_bias_biases_only_the_input_projections():
    """`qkv_bias` without `use_bias` (Qwen2) == full-bias attention whose output bias is 0."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    ours = MultiHeadAttention(num_heads=4, head_dim=4, use_bias=False, qkv_bias=True)
    full = MultiHeadAttention(num_heads=4, head_dim=4)
    ours(x), full(x)
    projections = (ours.query_dense, ours.key_dense, ours.value_dense, ours.output_dense)
    assert [dense.bias is not None for dense in projections] == [True, True, True, False]
    for dense in projections[:3]:
        dense.bias.assign(rng.normal(size=dense.bias.shape).astype("float32"))
    for mine, theirs in zip(projections[:3], (full.query_dense, full.key_dense, full.value_dense)):
        theirs.set_weights(mine.get_weights())
    kernel = ours.output_dense.kernel.numpy()
    full.output_dense.set_weights([kernel, np.zeros(kernel.shape[1], "float32")])
    np.testing.assert_allclose(ours(x), full(x), atol=1e-6)
    # Without the query/key/value biases the output differs: the biases are used.
    plain = MultiHeadAttention(num_heads=4, head_dim=4, use_bias=False)
    plain(x)
    plain.set_weights([d.kernel.numpy() for d in projections])
    assert np.abs(np.asarray(plain(x)) - np.asarray(ours(x))).max() > 1e-3
    assert MultiHeadAttention.from_config(ours.get_config()).qkv_bias is True
