"""Hugging Face GPT-2 checkpoints -> kerasllm `Decoder` + `ByteBPETokenizer` (no torch).

Config: `n_embd`, `n_layer`, `n_head`, `n_inner` (None: 4 * n_embd), `n_positions`,
`activation_function`, `layer_norm_epsilon`, `resid_pdrop`/`attn_pdrop`, `scale_attn_weights`
and `tie_word_embeddings` map to a pre-norm `Decoder` with learned positions and a final
LayerNorm. Weights: GPT-2 stores its projections as `Conv1D` (in, out), which is the Keras
kernel layout already; the fused `c_attn` (in, 3 * hidden) is split into query, key and value.
Checkpoints of `GPT2Model` ("h.0...") and of `GPT2LMHeadModel` ("transformer.h.0...", a tied
`lm_head.weight` that equals `wte`) both load. The tokenizer is `vocab.json` + `merges.txt`.

Example:
>>> from kerasllm.convert.gpt2 import decoder_config_from_gpt2
>>> config = decoder_config_from_gpt2({"model_type": "gpt2", "vocab_size": 100, "n_embd": 32,
...     "n_layer": 2, "n_head": 4, "n_positions": 64})
>>> config["intermediate_dim"], config["activation"], config["norm_first"]
(128, 'gelu_approximate', True)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kerasllm.convert.bert import HF_ACTIVATIONS, CheckpointMismatchError
from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import (
    Assignment,
    assign_all,
    byte_bpe_tokenizer,
    read_weights,
    refuse,
    require,
    swap_rows,
)
from kerasllm.models import Decoder
from kerasllm.tokenizers import ByteBPETokenizer
from kerasllm.utils.files import read_json, resolve_inside

FAMILY = "GPT-2"
# Attention-mask buffers that older GPT-2 checkpoints saved with the weights.
_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def decoder_config_from_gpt2(hf_config: Mapping) -> dict:
    """`Decoder` hyperparameters from a GPT-2 `config.json`.

    Raises:
        ValueError: names the config key that has no kerasllm equivalent.
    """
    if hf_config.get("model_type") != "gpt2":
        raise refuse("model_type", hf_config.get("model_type"), "expected 'gpt2'.")
    require(hf_config, ("vocab_size", "n_embd", "n_layer", "n_head"), FAMILY)
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in HF_ACTIVATIONS:
        raise refuse("activation_function", activation, f"supported: {sorted(HF_ACTIVATIONS)}.")
    for key in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if hf_config.get(key):
            raise refuse(key, True, "kerasllm's Decoder has no such attention variant.")
    hidden = hf_config["n_embd"]
    return {
        "vocabulary_size": hf_config["vocab_size"],
        "num_layers": hf_config["n_layer"],
        "num_heads": hf_config["n_head"],
        "hidden_dim": hidden,
        "intermediate_dim": hf_config.get("n_inner") or 4 * hidden,
        "max_sequence_length": hf_config.get("n_positions", 1024),
        "position_embedding": "learned",
        "activation": HF_ACTIVATIONS[activation],
        "dropout": hf_config.get("resid_pdrop", 0.1),
        "attention_dropout": hf_config.get("attn_pdrop", 0.1),
        "norm_first": True,
        "norm_type": "layer",
        "layer_norm_epsilon": hf_config.get("layer_norm_epsilon", 1e-5),
        "use_bias": True,
        "embedding_norm": False,
        "embedding_scale": False,
        "tie_embeddings": bool(hf_config.get("tie_word_embeddings", True)),
        "attention_scale": None if hf_config.get("scale_attn_weights", True) else 1.0,
        "kernel_initializer_range": hf_config.get("initializer_range", 0.02),
    }


def _split(part: int, hidden: int):
    """Column block `part` (0 query, 1 key, 2 value) of a fused `c_attn` tensor."""

    def take(tensor: np.ndarray) -> np.ndarray:
        return tensor[..., part * hidden : (part + 1) * hidden]

    return take


def gpt2_assignments(decoder: Decoder, swap: int = 0) -> list[Assignment]:
    """Every `Decoder` variable and the GPT-2 tensor (canonical, unprefixed name) it takes;
    `swap`: the vocabulary id exchanged with 0 (see `kerasllm.convert.hf_decoder.pad_swap`)."""
    hidden = decoder.hidden_dim
    rows = swap_rows(swap)
    out = [
        Assignment("wte.weight", decoder.token_embedding.embeddings, rows),
        Assignment("wpe.weight", decoder.position_layer.position_embeddings),
        Assignment("ln_f.weight", decoder.final_norm.gamma),
        Assignment("ln_f.bias", decoder.final_norm.beta),
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
        p = f"h.{i}"
        attention = block.self_attention
        for part, dense in enumerate(
            (attention.query_dense, attention.key_dense, attention.value_dense)
        ):
            out.append(Assignment(f"{p}.attn.c_attn.weight", dense.kernel, _split(part, hidden)))
            out.append(Assignment(f"{p}.attn.c_attn.bias", dense.bias, _split(part, hidden)))
        ff = block.feed_forward
        for name, dense in (
            ("attn.c_proj", attention.output_dense),
            ("mlp.c_fc", ff.inner_dense),
            ("mlp.c_proj", ff.output_dense),
        ):
            out.append(Assignment(f"{p}.{name}.weight", dense.kernel))
            out.append(Assignment(f"{p}.{name}.bias", dense.bias))
        for name, norm in (("ln_1", block.self_attention_norm), ("ln_2", block.feed_forward_norm)):
            out.append(Assignment(f"{p}.{name}.weight", norm.gamma))
            out.append(Assignment(f"{p}.{name}.bias", norm.beta))
    return out


def load_gpt2_weights(decoder: Decoder, tensors: Mapping[str, np.ndarray], swap: int = 0) -> None:
    """Loads a GPT-2 state dict (`GPT2Model` or `GPT2LMHeadModel`) into `decoder`, all or nothing.

    `swap`: the vocabulary id exchanged with 0 (the tokenizer's, see `load_gpt2_tokenizer`).

    Raises:
        CheckpointMismatchError: a tensor is missing, misshapen or unused (named), or a tied
            model's `lm_head.weight` differs from `wte.weight`.
    """
    canonical = {name.removeprefix("transformer."): value for name, value in tensors.items()}
    if decoder.tie_embeddings and "lm_head.weight" in canonical:
        head = canonical.pop("lm_head.weight")
        if "wte.weight" in canonical and not np.array_equal(head, canonical["wte.weight"]):
            raise CheckpointMismatchError(
                "lm_head.weight differs from wte.weight, but config.json ties them "
                "(tie_word_embeddings); set tie_word_embeddings=false to load both."
            )
    assign_all(FAMILY, gpt2_assignments(decoder, swap), canonical, ignored=_BUFFER.match)


def load_gpt2_tokenizer(
    directory: str | os.PathLike, hf_config: Mapping | None = None
) -> tuple[ByteBPETokenizer, int]:
    """GPT-2's byte-level BPE from `vocab.json` + `merges.txt`, and the id exchanged with 0.

    kerasllm pads with id 0, which is "!" in GPT-2's vocabulary: ids 0 and `<|endoftext|>`'s
    trade places (`kerasllm.convert.hf_decoder.pad_swap`), every other id is Hugging Face's.
    Roles "pad" and "end" are both `<|endoftext|>`.
    """
    directory = Path(directory)
    hf_config = read_hf_config(directory) if hf_config is None else hf_config
    vocabulary = read_json(resolve_inside(directory, "vocab.json", "vocabulary"), "vocab.json")
    if not isinstance(vocabulary, dict):
        raise ValueError(f"{directory}/vocab.json must map tokens to ids.")
    merges = resolve_inside(directory, "merges.txt", "merges file")
    return byte_bpe_tokenizer(Path(directory), hf_config, vocabulary, os.fspath(merges))


def load_gpt2_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides):
    """A GPT-2 checkpoint folder as `(Decoder, ByteBPETokenizer)`.

    Args:
        directory: `config.json`, weights, `vocab.json`, `merges.txt`.
        weights: False keeps random weights (no tensor read).
        **overrides: hyperparameters that keep the weights' shapes (`dropout`, `dtype`).

    Example:
    >>> decoder, tokenizer = load_gpt2_checkpoint("path/to/gpt2")  # doctest: +SKIP
    """
    hf_config = read_hf_config(directory)
    decoder = Decoder(**{**decoder_config_from_gpt2(hf_config), **overrides})
    tokenizer, swap = load_gpt2_tokenizer(directory, hf_config)
    if weights:
        load_gpt2_weights(decoder, read_weights(directory), swap)
    return decoder, tokenizer
