"""Every layer of `kerasllm.layers` through `kerasllm.testing.run_layer_test`: serialization,
symbolic call and `.keras` file, training with dropout, mixed precision, padding.

A new layer gets a case here (`test_every_layer_has_a_harness_case` fails until it does).
"""

import numpy as np
import pytest

from kerasllm import layers
from kerasllm.layers import masking
from kerasllm.testing import right_padding_mask, run_layer_test

B, T, S, H = 2, 5, 7, 16
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, T, H)).astype("float32")
SOURCE = RNG.normal(size=(B, S, H)).astype("float32")
# Row 1 has 3 real positions out of T (self-attention) and 4 out of S (cross-attention).
REAL = right_padding_mask([T, 3], T).astype(bool)
SOURCE_REAL = right_padding_mask([S, 4], S).astype(bool)
PADDING_MASK = np.asarray(masking.padding_to_attention_mask(REAL, T))  # (B, T, T)
CAUSAL_MASK = np.asarray(masking.merge_masks(masking.causal_mask(T, T), PADDING_MASK))
CROSS_MASK = np.asarray(masking.padding_to_attention_mask(SOURCE_REAL))  # (B, 1, S)
POSITION_BIAS = RNG.normal(size=(1, 4, T, T)).astype("float32")

# Padding checks: padded self-attention positions (query rows and keys) of row 1 change; the
# outputs at its real positions must not.
SELF_PADDING = {"argument": None, "real": REAL, "output_real": REAL}
CROSS_PADDING = {"argument": "value", "real": SOURCE_REAL, "output_real": None}

ATTENTION = dict(num_heads=4, head_dim=4)
BLOCK = dict(num_heads=4, intermediate_dim=32)

CASES = {
    "attention_self": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs=ATTENTION,
        input_data=X,
        call_kwargs={"attention_mask": PADDING_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "attention_cross": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs={**ATTENTION, "output_dim": 8},
        input_data=X,
        call_kwargs={"value": SOURCE, "attention_mask": CROSS_MASK},
        expected_output_shape=(B, T, 8),
        dropout_kwargs={"dropout": 0.3},
        padding=CROSS_PADDING,
    ),
    "attention_gqa_causal_rotary": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs={**ATTENTION, "num_key_value_heads": 2, "rotary_max_wavelength": 10000.0},
        input_data=X,
        call_kwargs={"attention_mask": CAUSAL_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "attention_multi_query_cross": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs={**ATTENTION, "num_key_value_heads": 1},
        input_data=X,
        call_kwargs={"value": SOURCE, "attention_mask": CROSS_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
        padding=CROSS_PADDING,
    ),
    "attention_t5_bias": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs={**ATTENTION, "use_bias": False, "scale": 1.0},
        input_data=X,
        call_kwargs={"attention_mask": CAUSAL_MASK, "position_bias": POSITION_BIAS},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "attention_qwen2_qkv_bias": dict(
        cls=layers.MultiHeadAttention,
        init_kwargs={
            **ATTENTION,
            "num_key_value_heads": 2,
            "use_bias": False,
            "qkv_bias": True,
            "rotary_max_wavelength": 10000.0,
        },
        input_data=X,
        call_kwargs={"attention_mask": CAUSAL_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "token_embedding_tied": dict(
        cls=layers.TokenEmbedding,
        init_kwargs=dict(input_dim=20, output_dim=8),
        input_data=RNG.integers(0, 20, size=(B, T)).astype("int32"),
        expected_output_shape=(B, T, 8),
    ),
    "token_embedding_untied_reverse": dict(
        cls=layers.TokenEmbedding,
        init_kwargs=dict(input_dim=20, output_dim=H, tie_weights=False, logit_scale=0.25),
        input_data=X,
        call_kwargs={"reverse": True},
        expected_output_shape=(B, T, 20),
        # The reverse projection has its own matrix; the lookup table is not used.
        allow_unused_weights=("token_embedding_untied_reverse/embeddings",),
        name="token_embedding_untied_reverse",
    ),
    "position_embedding": dict(
        cls=layers.PositionEmbedding,
        init_kwargs=dict(sequence_length=16),
        input_data=X,
        call_kwargs={"start_index": 3},
        expected_output_shape=(B, T, H),
    ),
    "sinusoidal_position_embedding": dict(
        cls=layers.SinusoidalPositionEmbedding,
        init_kwargs=dict(max_wavelength=100.0),
        input_data=X,
        call_kwargs={"start_index": 2},
        expected_output_shape=(B, T, H),
    ),
    "rotary_embedding": dict(
        cls=layers.RotaryEmbedding,
        init_kwargs=dict(max_wavelength=500.0),
        input_data=X.reshape(B, T, 4, 4),
        call_kwargs={"start_index": 1},
        expected_output_shape=(B, T, 4, 4),
    ),
    "rotary_embedding_llama3_scaling": dict(
        cls=layers.RotaryEmbedding,
        init_kwargs=dict(
            max_wavelength=500.0,
            scaling={
                "rope_type": "llama3",
                "factor": 4.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        input_data=X.reshape(B, T, 4, 4),
        call_kwargs={"start_index": 1},
        expected_output_shape=(B, T, 4, 4),
    ),
    "relative_position_bias": dict(
        cls=layers.RelativePositionBias,
        init_kwargs=dict(num_heads=4, num_buckets=8, max_distance=16, bidirectional=False),
        input_data=None,
        call_kwargs={"query_length": T, "key_length": S, "query_offset": 2},
        expected_output_shape=(1, 4, T, S),
    ),
    "feed_forward": dict(
        cls=layers.FeedForward,
        init_kwargs=dict(intermediate_dim=32, activation="gelu"),
        input_data=X,
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
    ),
    "feed_forward_gated": dict(
        cls=layers.FeedForward,
        init_kwargs=dict(intermediate_dim=32, activation="swiglu", use_bias=False),
        input_data=X,
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.3},
    ),
    "rms_norm": dict(
        cls=layers.RMSNorm,
        init_kwargs=dict(epsilon=1e-5),
        input_data=X,
        expected_output_shape=(B, T, H),
    ),
    "encoder_block_postnorm": dict(
        cls=layers.EncoderBlock,
        init_kwargs=BLOCK,
        input_data=X,
        call_kwargs={"attention_mask": PADDING_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.1, "attention_dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "encoder_block_prenorm_rms_gqa_rotary_gated": dict(
        cls=layers.EncoderBlock,
        init_kwargs={
            **BLOCK,
            "norm_first": True,
            "norm_type": "rms",
            "num_key_value_heads": 2,
            "rotary_max_wavelength": 10000.0,
            "activation": "geglu",
            "use_bias": False,
        },
        input_data=X,
        call_kwargs={"attention_mask": PADDING_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.1, "attention_dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "decoder_block_causal": dict(
        cls=layers.DecoderBlock,
        init_kwargs={**BLOCK, "norm_first": True, "num_key_value_heads": 2},
        input_data=X,
        call_kwargs={"self_attention_mask": CAUSAL_MASK},
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.1, "attention_dropout": 0.3},
        padding=SELF_PADDING,
    ),
    "decoder_block_cross_t5": dict(
        cls=layers.DecoderBlock,
        init_kwargs={
            **BLOCK,
            "cross_attention": True,
            "norm_first": True,
            "norm_type": "rms",
            "use_bias": False,
            "attention_scale": 1.0,
            "activation": "reglu",
        },
        input_data=X,
        call_kwargs={
            "self_attention_mask": CAUSAL_MASK,
            "encoder_output": SOURCE,
            "cross_attention_mask": CROSS_MASK,
            "position_bias": POSITION_BIAS,
        },
        expected_output_shape=(B, T, H),
        dropout_kwargs={"dropout": 0.1, "attention_dropout": 0.3},
        padding={"argument": "encoder_output", "real": SOURCE_REAL, "output_real": None},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_harness(case):
    kwargs = dict(CASES[case])
    name = kwargs.pop("name", None)
    if name is not None:
        kwargs["init_kwargs"] = {**kwargs["init_kwargs"], "name": name}
    run_layer_test(**kwargs)


def test_every_layer_has_a_harness_case():
    """Each public layer class runs through the harness at least once."""
    exported = {
        getattr(layers, n)
        for n in layers.__all__
        if isinstance(getattr(layers, n), type) and n != "TransformerBlock"  # abstract base
    }
    covered = {case["cls"] for case in CASES.values()}
    missing = sorted(c.__name__ for c in exported - covered)
    assert not missing, f"add a run_layer_test case for {missing} in {__file__}"
