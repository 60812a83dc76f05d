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

# GPT-2 under its Hugging Face names (`gpt_base` is the same 124M model); the converter
# (`kerasllm.convert.gpt2`) produces exactly these configs from the published config.json files.
for _name, (_layers, _hidden, _heads, _params, _desc) in {
    "gpt2": (12, 768, 12, 124_439_808, "GPT-2 124M (L=12, H=768)"),
    "gpt2_medium": (24, 1024, 16, 354_823_168, "GPT-2 medium 355M (L=24, H=1024)"),
}.items():
    register(
        _name,
        "decoder",
        {
            **_GPT,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "intermediate_dim": 4 * _hidden,
            "attention_dropout": 0.1,
            "use_bias": True,
            "embedding_norm": False,
        },
        description=f"{_desc}, 50,257 byte-BPE vocabulary, 1,024 positions (architecture only)",
        tokenizer=GPT2_TOKENIZER,
        num_params=_params,
    )

# The Llama family (Touvron et al., 2023): pre-norm RMSNorm, rotary positions, SwiGLU,
# grouped-query attention, no biases; what `kerasllm.convert.llama` maps a config.json to.
_LLAMA = dict(
    position_embedding="rotary",
    activation="swiglu",
    dropout=0.0,
    attention_dropout=0.0,
    norm_first=True,
    norm_type="rms",
    use_bias=False,
    embedding_norm=False,
    embedding_scale=False,
    scale_tied_logits=False,
    rotary_max_wavelength=10000.0,
)
_LLAMA_SIZES = {
    # name: (vocabulary, layers, hidden, heads, kv heads, ff, positions, tied, eps, params, desc)
    "llama_tiny": (
        1024, 2, 64, 4, 2, 160, 256, False, 1e-5, 217_408,
        "Tiny Llama-style decoder (L=2, H=64, 4 heads / 2 KV heads) for tests and demos",
    ),
    "smollm_135m": (
        49152, 30, 576, 9, 3, 1536, 2048, True, 1e-5, 134_515_008,
        "SmolLM-135M-shaped decoder (L=30, H=576, 9 heads / 3 KV heads, tied embeddings, "
        "49,152 byte-BPE vocabulary; architecture only)",
    ),
    "tinyllama_1b": (
        32000, 22, 2048, 32, 4, 5632, 2048, False, 1e-5, 1_100_048_384,
        "TinyLlama-1.1B-shaped decoder (L=22, H=2048, 32 heads / 4 KV heads, 32,000 "
        "vocabulary; architecture only)",
    ),
}  # fmt: skip
for _name, (_vocab, _layers, _hidden, _heads, _kv, _ff, _positions, _tied, _eps, _params,
            _desc) in _LLAMA_SIZES.items():  # fmt: skip
    register(
        _name,
        "decoder",
        {
            **_LLAMA,
            "vocabulary_size": _vocab,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "num_key_value_heads": _kv,
            "intermediate_dim": _ff,
            "max_sequence_length": _positions,
            "tie_embeddings": _tied,
            "layer_norm_epsilon": _eps,
        },
        description=_desc,
        tokenizer={"kind": "byte_bpe", "vocabulary_size": _vocab},
        num_params=_params,
    )

# T5 base (v1.0, as `t5_small` above) and T5 v1.1 (gated GELU, untied output projection, no
# logit rescaling, d_kv=64 whatever d_model); what `kerasllm.convert.t5` maps their configs to.
_T5 = dict(
    vocabulary_size=32128,
    max_sequence_length=512,
    position_embedding="relative",
    relative_num_buckets=32,
    relative_max_distance=128,
    dropout=0.1,
    norm_first=True,
    norm_type="rms",
    layer_norm_epsilon=1e-6,
    use_bias=False,
    embedding_norm=False,
    attention_scale=1.0,
    kernel_initializer_range=0.05,
)
_T5_SIZES = {
    # name: (layers, d_model, heads, d_kv, d_ff, v1.1, params, description)
    "t5_base": (12, 768, 12, 64, 3072, False, 222_903_552, "T5 v1.0 base (12+12 layers, d=768)"),
    "t5_v1_1_small": (
        8, 512, 6, 64, 1024, True, 76_961_152, "T5 v1.1 small (8+8 layers, d=512, gated GELU)"
    ),
    "t5_v1_1_base": (
        12, 768, 12, 64, 2048, True, 247_577_856, "T5 v1.1 base (12+12 layers, d=768, gated GELU)"
    ),
}  # fmt: skip
for _name, (_layers, _hidden, _heads, _kv, _ff, _v11, _params, _desc) in _T5_SIZES.items():
    register(
        _name,
        "encoder_decoder",
        {
            **_T5,
            "num_layers": _layers,
            "hidden_dim": _hidden,
            "num_heads": _heads,
            "head_dim": _kv,
            "intermediate_dim": _ff,
            "activation": "geglu" if _v11 else "relu",
            "tie_embeddings": not _v11,
            "scale_tied_logits": not _v11,
        },
        description=f"{_desc}, 32,128 SentencePiece vocabulary (architecture only)",
        tokenizer=T5_TOKENIZER,
        num_params=_params,
    )
