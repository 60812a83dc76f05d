"""Built-in presets: published architectures at their published shapes.

`num_params` records each backbone's parameter count; `tests/zoo/test_presets.py` checks it
against the built model, and for BERT, GPT-2 and T5 against the published figures.
"""

from __future__ import annotations

from kerasllm.zoo.registry import _register_built_in as register

BERT_TOKENIZER = {"kind": "wordpiece", "vocabulary_size": 30522, "lowercase": True}
GPT2_TOKENIZER = {"kind": "byte_bpe", "vocabulary_size": 50257}
T5_TOKENIZER = {"kind": "sentencepiece", "vocabulary_size": 32128}

# Google's BERT (Devlin et al., 2019; Turc et al., 2019 for the small sizes): post-norm,
# exact GELU, learned positions, two segments, embedding LayerNorm, tanh pooler.
_BERT = dict(
    vocabulary_size=30522,
    max_sequence_length=512,
    position_embedding="learned",
    activation="gelu",
    dropout=0.1,
    norm_first=False,
    layer_norm_epsilon=1e-12,
    num_segments=2,
    pooler=True,
)
_BERT_SIZES = {
    # name: (layers, hidden, heads, params, description)
    "bert_tiny": (2, 128, 2, 4_385_920, "BERT-Tiny (L=2, H=128)"),
    "bert_mini": (4, 256, 4, 11_170_560, "BERT-Mini (L=4, H=256)"),
    "bert_small": (4, 512, 8, 28_763_648, "BERT-Small (L=4, H=512)"),
    "bert_medium": (8, 512, 8, 41_373_184, "BERT-Medium (L=8, H=512)"),
    "bert_base": (12, 768, 12, 109_482_240, "BERT-Base (L=12, H=768)"),
}
for _name, (_layers, _hidden, _heads, _params, _desc) in _BERT_SIZES.items():
    register(
        _name,
        "encoder",
        {
            **_BERT,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "intermediate_dim": 4 * _hidden,
        },
        description=f"{_desc}, 30,522 WordPiece vocabulary, 512 positions",
        tokenizer=BERT_TOKENIZER,
        num_params=_params,
    )

# GPT-2 (Radford et al., 2019): pre-norm with a final LayerNorm, tanh GELU, learned positions,
# tied input/output embeddings.
_GPT = dict(
    vocabulary_size=50257,
    max_sequence_length=1024,
    position_embedding="learned",
    activation="gelu_approximate",
    dropout=0.1,
    norm_first=True,
    layer_norm_epsilon=1e-5,
)
_GPT_SIZES = {
    "gpt_tiny": (2, 128, 2, 6_960_768, "Tiny GPT-2-style decoder (L=2, H=128) for tests and demos"),
    "gpt_small": (6, 512, 8, 45_171_200, "Small GPT-2-style decoder (L=6, H=512)"),
    "gpt_base": (12, 768, 12, 124_439_808, "GPT-2 124M (L=12, H=768), 50,257 byte-BPE vocabulary"),
}
for _name, (_layers, _hidden, _heads, _params, _desc) in _GPT_SIZES.items():
    register(
        _name,
        "decoder",
        {
            **_GPT,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "intermediate_dim": 4 * _hidden,
        },
        description=_desc,
        tokenizer=GPT2_TOKENIZER,
        num_params=_params,
    )

# The Transformer (Vaswani et al., 2017): post-norm, ReLU, sinusoidal positions, embeddings
# scaled by sqrt(d_model) and shared between encoder, decoder and output projection.
_TRANSFORMER = dict(
    position_embedding="sinusoidal",
    activation="relu",
    norm_first=False,
    embedding_norm=False,
    embedding_scale=True,
    layer_norm_epsilon=1e-6,
    dropout=0.1,
    max_sequence_length=512,
)
_TRANSFORMER_SIZES = {
    # name: (layers, hidden, heads, ff, vocabulary, params, description)
    "transformer_tiny": (2, 128, 4, 512, 8000, 1_949_696, "Tiny Transformer (2+2 layers, d=128)"),
    "transformer_small": (
        3,
        256,
        4,
        1024,
        16000,
        9_625_600,
        "Small Transformer (3+3 layers, d=256)",
    ),
    "transformer_base": (
        6,
        512,
        8,
        2048,
        37000,
        63_082_496,
        "Transformer base of Vaswani et al. 2017 (6+6 layers, d=512, shared 37k vocabulary)",
    ),
}
for _name, (_layers, _hidden, _heads, _ff, _vocab, _params, _desc) in _TRANSFORMER_SIZES.items():
    register(
        _name,
        "encoder_decoder",
        {
            **_TRANSFORMER,
            "vocabulary_size": _vocab,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "intermediate_dim": _ff,
        },
        description=_desc,
        tokenizer={"kind": "sentencepiece", "vocabulary_size": _vocab},
        num_params=_params,
    )

# T5 v1.0 small (Raffel et al., 2020): pre-norm RMSNorm without biases, ReLU, bucketed relative
# position bias (one table per stack), unscaled attention logits, tied embeddings with the output
# rescaled by d_model ** -0.5.
register(
    "t5_small",
    "encoder_decoder",
    dict(
        vocabulary_size=32128,
        num_layers=6,
        num_heads=8,
        hidden_dim=512,
        intermediate_dim=2048,
        max_sequence_length=512,
        position_embedding="relative",
        relative_num_buckets=32,
        relative_max_distance=128,
        activation="relu",
        dropout=0.1,
        norm_first=True,
        norm_type="rms",
        layer_norm_epsilon=1e-6,
        use_bias=False,
        embedding_norm=False,
        attention_scale=1.0,
        kernel_initializer_range=0.05,
    ),
    description="T5 v1.0 small (6+6 layers, d=512), 32,128 SentencePiece vocabulary",
    tokenizer=T5_TOKENIZER,
    num_params=60_506_624,
)
