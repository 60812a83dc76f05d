"""Behavioural tests of the three backbones over every architectural variant."""

import keras
import numpy as np
import pytest

from kerasllm.models import CausalLM, Decoder, Encoder, EncoderDecoder, Seq2SeqLM
from kerasllm.testing import (
    TINY_VARIANTS,
    decoder_inputs,
    encoder_inputs,
    right_padding_mask,
    seq2seq_inputs,
    tiny_config,
)

VARIANTS = sorted(TINY_VARIANTS)


def _with_padding(inputs, extra, seed=7, keys=("token_ids", "padding_mask", "segment_ids")):
    """Appends `extra` padded positions holding random (non-zero) garbage tokens."""
    rng = np.random.default_rng(seed)
    out = dict(inputs)
    for key in keys:
        if key not in inputs:
            continue
        value = inputs[key]
        pad = (
            rng.integers(1, 50, size=(value.shape[0], extra))
            if "token" in key
            else np.zeros((value.shape[0], extra))
        )
        out[key] = np.concatenate([value, pad.astype(value.dtype)], axis=1)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_padding_invariance(variant):
    model = Encoder(**tiny_config(variant))
    inputs = encoder_inputs(lengths=[8, 5])
    base = model(inputs)["sequence_output"].numpy()
    padded = model(_with_padding(inputs, 6))["sequence_output"].numpy()
    np.testing.assert_allclose(padded[0, :8], base[0], atol=1e-5)
    np.testing.assert_allclose(padded[1, :5], base[1, :5], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoder_is_causal(variant):
    model = Decoder(**tiny_config(variant))
    inputs = decoder_inputs(batch=1, length=10)
    base = model(inputs)["sequence_output"].numpy()
    for t in (0, 4, 8):
        changed = dict(inputs)
        changed["token_ids"] = inputs["token_ids"].copy()
        changed["token_ids"][:, t + 1 :] = (changed["token_ids"][:, t + 1 :] + 13) % 90 + 1
        out = model(changed)["sequence_output"].numpy()
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)
        assert not np.allclose(out[:, t + 1 :], base[:, t + 1 :], atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoder_padding_invariance(variant):
    model = Decoder(**tiny_config(variant))
    inputs = decoder_inputs(lengths=[8, 6])
    base = model(inputs)["sequence_output"].numpy()
    padded = model(_with_padding(inputs, 5))["sequence_output"].numpy()
    np.testing.assert_allclose(padded[0, :8], base[0], atol=1e-5)
    np.testing.assert_allclose(padded[1, :6], base[1, :6], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_seq2seq_padding_invariance_and_causality(variant):
    model = EncoderDecoder(**tiny_config(variant))
    inputs = seq2seq_inputs(source_lengths=[9, 4], target_lengths=[7, 3])
    base = model(inputs)["decoder_sequence_output"].numpy()
    # Both sides padded further, each with garbage tokens behind its padding mask.
    padded = {}
    for side, extra in (("encoder", 4), ("decoder", 3)):
        more = _with_padding(
            {
                "token_ids": inputs[f"{side}_token_ids"],
                "padding_mask": inputs[f"{side}_padding_mask"],
            },
            extra,
        )
        padded.update({f"{side}_{key}": value for key, value in more.items()})
    out = model(padded)["decoder_sequence_output"].numpy()
    np.testing.assert_allclose(out[0, :7], base[0], atol=1e-5)
    np.testing.assert_allclose(out[1, :3], base[1, :3], atol=1e-5)
    # Causality of the decoder: later target tokens never change earlier outputs.
    changed = dict(inputs)
    changed["decoder_token_ids"] = inputs["decoder_token_ids"].copy()
    changed["decoder_token_ids"][:, 4:] = 1
    out = model(changed)["decoder_sequence_output"].numpy()
    np.testing.assert_allclose(out[0, :4], base[0, :4], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_lm_cache_matches_full_forward(variant):
    model = CausalLM(Decoder(**tiny_config(variant)))
    length = 10
    inputs = decoder_inputs(lengths=[10, 7], length=length)
    full = model(inputs).numpy()
    caches = model.init_cache(2, length)
    prompt = 4
    logits, _, caches = model.call_with_cache(
        inputs["token_ids"][:, :prompt], inputs["padding_mask"], caches, 0
    )
    steps = [logits.numpy()]
    for i in range(prompt, length):
        logits, _, caches = model.call_with_cache(
            inputs["token_ids"][:, i : i + 1], inputs["padding_mask"], caches, i
        )
        steps.append(logits.numpy())
    cached = np.concatenate(steps, axis=1)
    np.testing.assert_allclose(cached[0], full[0], atol=1e-5)
    np.testing.assert_allclose(cached[1, :7], full[1, :7], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_seq2seq_cache_matches_full_forward(variant):
    model = Seq2SeqLM(EncoderDecoder(**tiny_config(variant)))
    inputs = seq2seq_inputs(source_lengths=[9, 5], target_lengths=[7, 7])
    full = model(inputs).numpy()
    encoder_output = model.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    self_caches, cross_caches = model.init_cache(encoder_output, 7)
    target_mask = right_padding_mask([7, 7], 7)
    steps = []
    for i in range(7):
        logits, _, self_caches = model.call_decoder_with_cache(
            inputs["decoder_token_ids"][:, i : i + 1],
            target_mask,
            inputs["encoder_padding_mask"],
            self_caches,
            cross_caches,
            i,
        )
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_any_length_up_to_maximum_and_clear_error_beyond():
    model = Encoder(**tiny_config())
    for length in (1, 7, 32):
        out = model(encoder_inputs(length=length))["sequence_output"]
        assert out.shape == (2, length, 16)
    with pytest.raises(ValueError, match="exceeds this model's max_sequence_length=32"):
        model(encoder_inputs(length=33))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"hidden_dim": 18}, "divisible by `num_heads`"),
        ({"num_layers": 0}, "`num_layers` must be a positive integer"),
        ({"dropout": -0.1}, r"`dropout` must be in \[0, 1\)"),
        ({"position_embedding": "rotery"}, "Did you mean 'rotary'"),
        ({"num_key_value_heads": 3}, "multiple of `num_key_value_heads`"),
    ],
)
def test_invalid_config_fails_before_any_weight(monkeypatch, bad, message):
    def no_weights(*args, **kwargs):
        raise AssertionError("a weight was created before validation")

    monkeypatch.setattr(keras.layers.Layer, "add_weight", no_weights)
    with pytest.raises(ValueError, match=message):
        Decoder(**tiny_config(**bad))


@pytest.mark.parametrize("cls", [Encoder, Decoder, EncoderDecoder])
def test_validate_config_leaves_the_callers_dict_unchanged(cls):
    """A search space validates candidate configs with the class method; it must not find the
    subclass's defaults (num_segments, pooler, num_decoder_layers) written into its dicts."""
    import inspect

    from kerasllm.models import Backbone

    parameters = inspect.signature(Backbone.__init__).parameters.values()
    config = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    config.update(tiny_config())
    before = dict(config)
    cls.validate_config(config)
    assert config == before
    with pytest.raises(ValueError, match="num_layers"):
        cls.validate_config({**config, "num_layers": 0})


def test_qkv_bias_adds_query_key_value_biases_only_and_round_trips():
    """Qwen2's layout: `qkv_bias=True` with `use_bias=False`; the default adds nothing."""
    config = tiny_config("rotary_gqa_swiglu")
    plain, qwen2 = Decoder(**config), Decoder(**config, qkv_bias=True)
    assert plain.qkv_bias is False and "qkv_bias" in plain.get_config()
    attention = qwen2.blocks[0].self_attention
    head_dim = config["hidden_dim"] // config["num_heads"]
    per_block = (config["num_heads"] + 2 * config["num_key_value_heads"]) * head_dim
    assert qwen2.count_params() - plain.count_params() == config["num_layers"] * per_block
    assert attention.query_dense.bias is not None and attention.output_dense.bias is None
    rebuilt = Decoder.from_config(qwen2.get_config())
    assert rebuilt.qkv_bias and rebuilt.blocks[0].self_attention.key_dense.bias is not None
    # A config saved before the key existed still loads, without the biases.
    old = {k: v for k, v in plain.get_config().items() if k != "qkv_bias"}
    assert Decoder.from_config(old).count_params() == plain.count_params()
