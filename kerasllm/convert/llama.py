"""Hugging Face Llama-family checkpoints (Llama, Mistral) -> kerasllm `Decoder` (no torch).

Config: `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`
(grouped-query attention), `head_dim`, `intermediate_size`, `max_position_embeddings`,
`rms_norm_eps`, `rope_theta` (or transformers 5's `rope_parameters`), `tie_word_embeddings`,
`attention_bias`/`mlp_bias` map to a pre-norm RMSNorm `Decoder` with rotary positions, a SwiGLU
feed-forward and a final RMSNorm. Weights: `nn.Linear` (out, in) tensors are transposed to Keras
(in, out) kernels; `gate_proj` is the activated projection (`gate_dense`), `up_proj` the linear
one (`inner_dense`), `lm_head` the untied output matrix. The tokenizer is a byte-level BPE
`tokenizer.json` (SmolLM, Llama 3 style).

Rope scaling "linear" and "llama3" map to `rotary_scaling`. Refused, naming the key: other rope
scalings (`rope_scaling` / `rope_parameters.rope_type`: dynamic, yarn, longrope), Mistral's
`sliding_window` when shorter than the context, an activation other than SiLU,
`attention_bias` without `mlp_bias` (or the reverse), and model types whose layout differs
(Qwen2's query/key/value-only biases).

Example:
>>> from kerasllm.convert.llama import decoder_config_from_llama
>>> config = decoder_config_from_llama({"model_type": "llama", "vocab_size": 100,
...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
...     "num_key_value_heads": 2, "intermediate_size": 64, "rope_theta": 500000.0})
>>> config["activation"], config["num_key_value_heads"], config["rotary_max_wavelength"]
('swiglu', 2, 500000.0)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from kerasllm.convert.bert import CheckpointMismatchError
from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import (
    Assignment,
    assign_all,
    byte_bpe_from_tokenizer_json,
    read_weights,
    refuse,
    require,
    swap_rows,
)
from kerasllm.layers.embeddings import ROPE_SCALINGS, check_rope_scaling
from kerasllm.models import Decoder

FAMILY = "Llama"
MODEL_TYPES = ("llama", "mistral")
_BUFFER = re.compile(r"^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$")


def _scaling(key: str, spec: Mapping) -> dict | None:
    """kerasllm's `rotary_scaling` for a Hugging Face rope spec (None when unscaled)."""
    rope_type = spec.get("rope_type", spec.get("type", "default"))
    if rope_type == "default":
        return None
    if rope_type not in ROPE_SCALINGS:
        raise refuse(
            key,
            rope_type,
            f"kerasllm's rotary embedding implements {sorted(ROPE_SCALINGS)} scaling (and none).",
        )
    scaling = {"rope_type": rope_type, **{k: spec.get(k) for k in ROPE_SCALINGS[rope_type]}}
    try:
        check_rope_scaling(scaling)
    except ValueError as error:
        raise refuse(key, rope_type, str(error)) from None
    return scaling


def _rope_settings(hf_config: Mapping) -> tuple[float, dict | None]:
    """(rotary base, rotary scaling) from `rope_theta` + `rope_scaling` (transformers 4) or
    `rope_parameters` (transformers 5)."""
    parameters = hf_config.get("rope_parameters")
    if isinstance(parameters, dict) and "full_attention" in parameters:
        parameters = parameters["full_attention"]
    if isinstance(parameters, dict):
        theta = float(parameters.get("rope_theta", hf_config.get("rope_theta", 10000.0)))
        return theta, _scaling("rope_parameters.rope_type", parameters)
    scaling = hf_config.get("rope_scaling")
    theta = float(hf_config.get("rope_theta", 10000.0))
    if not scaling:
        return theta, None
    if not isinstance(scaling, dict):
        raise refuse("rope_scaling", scaling, "expected an object with a rope_type.")
    return theta, _scaling("rope_scaling", scaling)


def decoder_config_from_llama(hf_config: Mapping) -> dict:
    """`Decoder` hyperparameters from a Llama or Mistral `config.json`.

    Raises:
        ValueError: names the config key that has no kerasllm equivalent.
    """
    model_type = hf_config.get("model_type")
    if model_type not in MODEL_TYPES:
        reason = f"this converter reads {list(MODEL_TYPES)} checkpoints."
        if model_type == "qwen2":
            reason += " Qwen2 has biases on query/key/value but not on the output projection."
        raise refuse("model_type", model_type, reason)
    require(
        hf_config,
        (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ),
        FAMILY,
    )
    activation = hf_config.get("hidden_act", "silu")
    if activation not in ("silu", "swish"):
        raise refuse("hidden_act", activation, "Llama-family SwiGLU needs 'silu'.")
    attention_bias = bool(hf_config.get("attention_bias", False))
    if attention_bias != bool(hf_config.get("mlp_bias", False)):
        raise refuse(
            "attention_bias",
            attention_bias,
            f"with mlp_bias={hf_config.get('mlp_bias', False)!r}: kerasllm's use_bias applies to "
            "attention and feed-forward together.",
        )
    max_length = hf_config.get("max_position_embeddings", 2048)
    window = hf_config.get("sliding_window")
    if window is not None and window < max_length:
        raise refuse(
            "sliding_window",
            window,
            f"below max_position_embeddings ({max_length}); kerasllm attends to the whole context.",
        )
    heads = hf_config["num_attention_heads"]
    head_dim = hf_config.get("head_dim") or hf_config["hidden_size"] // heads
    kv_heads = hf_config.get("num_key_value_heads") or heads
    dropout = float(hf_config.get("attention_dropout", 0.0))
    theta, scaling = _rope_settings(hf_config)
    return {
        "vocabulary_size": hf_config["vocab_size"],
        "num_layers": hf_config["num_hidden_layers"],
        "num_heads": heads,
        "hidden_dim": hf_config["hidden_size"],
        "intermediate_dim": hf_config["intermediate_size"],
        "max_sequence_length": max_length,
        "head_dim": head_dim,
        "num_key_value_heads": kv_heads,
        "position_embedding": "rotary",
        "rotary_max_wavelength": theta,
        "rotary_scaling": scaling,
        "activation": "swiglu",
        "dropout": dropout,
        "attention_dropout": dropout,
        "norm_first": True,
        "norm_type": "rms",
        "layer_norm_epsilon": hf_config.get("rms_norm_eps", 1e-6),
        "use_bias": attention_bias,
        "embedding_norm": False,
        "embedding_scale": False,
        "tie_embeddings": bool(hf_config.get("tie_word_embeddings", False)),
        "scale_tied_logits": False,
        "kernel_initializer_range": hf_config.get("initializer_range", 0.02),
    }


def llama_assignments(decoder: Decoder, swap: int = 0) -> list[Assignment]:
    """Every `Decoder` variable and the Llama tensor (`LlamaForCausalLM` name) it takes;
    `swap`: the vocabulary id exchanged with 0 (see `kerasllm.convert.hf_decoder.pad_swap`)."""
    rows = swap_rows(swap)
    out = [
        Assignment("model.embed_tokens.weight", decoder.token_embedding.embeddings, rows),
        Assignment("model.norm.weight", decoder.final_norm.scale),
    ]
    if not decoder.tie_embeddings:
        out.append(
            Assignment(
                "lm_head.weight",
                decoder.token_embedding.reverse_embeddings,
                lambda tensor: rows(tensor).T,
            )
        )
    for i, block in enumerate(decoder.blocks):
        p = f"model.layers.{i}"
        attention, ff = block.self_attention, block.feed_forward
        denses = (
            ("self_attn.q_proj", attention.query_dense),
            ("self_attn.k_proj", attention.key_dense),
            ("self_attn.v_proj", attention.value_dense),
            ("self_attn.o_proj", attention.output_dense),
            ("mlp.gate_proj", ff.gate_dense),
            ("mlp.up_proj", ff.inner_dense),
            ("mlp.down_proj", ff.output_dense),
        )
        for name, dense in denses:
            out.append(Assignment(f"{p}.{name}.weight", dense.kernel, np.transpose))
            if decoder.use_bias:
                out.append(Assignment(f"{p}.{name}.bias", dense.bias))
        out.append(Assignment(f"{p}.input_layernorm.weight", block.self_attention_norm.scale))
        out.append(
            Assignment(f"{p}.post_attention_layernorm.weight", block.feed_forward_norm.scale)
        )
    return out


def load_llama_weights(decoder: Decoder, tensors: Mapping[str, np.ndarray], swap: int = 0) -> None:
    """Loads a `LlamaForCausalLM` (or bare `LlamaModel`) state dict, all or nothing.

    `swap`: the vocabulary id exchanged with 0 (the tokenizer's, see `pad_swap`).

    Raises:
        CheckpointMismatchError: a tensor is missing, misshapen or unused (named), or a tied
            model's `lm_head.weight` differs from the embeddings.
    """
    canonical = {
        (name if name.startswith(("model.", "lm_head.")) else f"model.{name}"): value
        for name, value in tensors.items()
    }
    if decoder.tie_embeddings and "lm_head.weight" in canonical:
        head = canonical.pop("lm_head.weight")
        embeddings = canonical.get("model.embed_tokens.weight")
        if embeddings is not None and not np.array_equal(head, embeddings):
            raise CheckpointMismatchError(
                "lm_head.weight differs from model.embed_tokens.weight, but config.json ties "
                "them (tie_word_embeddings)."
            )
    assign_all(FAMILY, llama_assignments(decoder, swap), canonical, ignored=_BUFFER.match)


def load_llama_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides):
    """A Llama/Mistral checkpoint folder as `(Decoder, ByteBPETokenizer)`.

    Args:
        directory: `config.json`, weights, byte-level BPE `tokenizer.json`.
        weights: False keeps random weights (no tensor read).
        **overrides: hyperparameters that keep the weights' shapes (`dropout`, `dtype`).

    Example:
    >>> decoder, tokenizer = load_llama_checkpoint("path/to/SmolLM-135M")  # doctest: +SKIP
    """
    hf_config = read_hf_config(directory)
    decoder = Decoder(**{**decoder_config_from_llama(hf_config), **overrides})
    tokenizer, swap = byte_bpe_from_tokenizer_json(directory, hf_config)
    if weights:
        load_llama_weights(decoder, read_weights(directory), swap)
    return decoder, tokenizer
