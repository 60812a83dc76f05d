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

import keras
import numpy as np

from kerasllm.convert.bert import HF_ACTIVATIONS
from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import (
    Assignment,
    assign_all,
    byte_bpe_tokenizer,
    decoder_of,
    drop_tied_head,
    embedding_assignments,
    load_decoder_checkpoint,
    refuse,
    require,
    state_dict,
    write_checkpoint,
)
from kerasllm.convert.layer_shapes import uniform_block_shape
from kerasllm.models import Decoder
from kerasllm.tokenizers import ByteBPETokenizer
from kerasllm.utils.files import read_json, resolve_inside

FAMILY = "GPT-2"
TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
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
    out = [
        *embedding_assignments(decoder, "wte.weight", swap),
        Assignment("wpe.weight", decoder.position_layer.position_embeddings),
        Assignment("ln_f.weight", decoder.final_norm.gamma),
        Assignment("ln_f.bias", decoder.final_norm.beta),
    ]
    for i, block in enumerate(decoder.blocks):
        p = f"h.{i}"
        attention = block.self_attention
        for part, dense in enumerate(
            (attention.query_dense, attention.key_dense, attention.value_dense)
        ):
            # A slice of the fused tensor: no per-tensor inverse.
            split = _split(part, hidden)
            out.append(Assignment(f"{p}.attn.c_attn.weight", dense.kernel, split))
            out.append(Assignment(f"{p}.attn.c_attn.bias", dense.bias, split))
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
    canonical = drop_tied_head(canonical, decoder, "wte.weight")
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
    return load_decoder_checkpoint(
        directory,
        decoder_config_from_gpt2,
        load_gpt2_tokenizer,
        load_gpt2_weights,
        weights,
        **overrides,
    )


# ------------------------------------------------------------------------- export
_EXPORT_FIXED = {
    "position_embedding": "learned",
    "norm_type": "layer",
    "norm_first": True,
    "use_bias": True,
    "embedding_norm": False,
    "embedding_scale": False,
}


def hf_config_from_gpt2_decoder(decoder: Decoder, eos_token_id: int) -> dict:
    """The `config.json` of a `GPT2LMHeadModel` computing what `decoder` computes.

    Raises:
        ValueError: names the `Decoder` setting GPT-2 has no form for.
    """
    for key, value in _EXPORT_FIXED.items():
        if getattr(decoder, key) != value:
            raise ValueError(
                f"A GPT-2 checkpoint needs the Decoder's {key}={value!r}; this one has "
                f"{key}={getattr(decoder, key)!r}."
            )
    head_dim = decoder.hidden_dim // decoder.num_heads
    if decoder.num_key_value_heads not in (None, decoder.num_heads):
        raise ValueError("A GPT-2 checkpoint has no grouped-query attention (num_key_value_heads).")
    if decoder.head_dim not in (None, head_dim):
        raise ValueError(
            f"A GPT-2 checkpoint needs head_dim = hidden_dim / num_heads ({head_dim})."
        )
    # `layer_shapes` (structured pruning): one shape for all blocks, and GPT-2's attention
    # spans the whole width (head width n_embd / n_head), so only feed-forward units can go.
    shape = uniform_block_shape(decoder, "GPT-2")
    if (
        shape["num_key_value_heads"] != shape["num_heads"]
        or shape["num_heads"] * shape["head_dim"] != decoder.hidden_dim
    ):
        raise ValueError(
            f"A GPT-2 checkpoint needs num_heads x head_dim = hidden_dim ({decoder.hidden_dim}) "
            f"and no grouped-query attention; this model's `layer_shapes` give every block "
            f"{shape['num_heads']} heads of width {shape['head_dim']} and "
            f"{shape['num_key_value_heads']} key/value heads (attention heads were pruned). "
            "Prune feed-forward units only (heads_fraction=0) to export GPT-2."
        )
    if decoder.attention_scale not in (None, 1.0):
        raise ValueError(f"A GPT-2 checkpoint cannot scale attention by {decoder.attention_scale}.")
    names = {ours: theirs for theirs, ours in HF_ACTIVATIONS.items()}
    names["gelu_approximate"] = "gelu_new"
    if decoder.activation not in names:
        raise ValueError(f"A GPT-2 checkpoint has no activation {decoder.activation!r}.")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": decoder.vocabulary_size,
        "n_embd": decoder.hidden_dim,
        "n_layer": decoder.num_layers,
        "n_head": shape["num_heads"],
        "n_inner": shape["intermediate_dim"],
        "n_positions": decoder.max_sequence_length,
        "activation_function": names[decoder.activation],
        "layer_norm_epsilon": decoder.layer_norm_epsilon,
        "resid_pdrop": float(decoder.dropout),
        "embd_pdrop": float(decoder.dropout),
        "attn_pdrop": float(decoder.attention_dropout or 0.0),
        "scale_attn_weights": decoder.attention_scale is None,
        "tie_word_embeddings": bool(decoder.tie_embeddings),
        "initializer_range": decoder.kernel_initializer_range,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "dtype": "float32",
    }


def gpt2_state_dict(decoder: Decoder, swap: int = 0) -> dict[str, np.ndarray]:
    """The decoder's weights under `GPT2LMHeadModel` names ("transformer.h.0..."), in Hugging
    Face's id numbering; query, key and value are fused back into `c_attn`."""
    fused = [a for a in gpt2_assignments(decoder, swap) if ".attn.c_attn." in a.hf_name]
    rest = [a for a in gpt2_assignments(decoder, swap) if ".attn.c_attn." not in a.hf_name]
    tensors = state_dict(FAMILY, rest)
    parts: dict[str, list[np.ndarray]] = {}
    for item in fused:  # query, key, value in that order (gpt2_assignments' order)
        parts.setdefault(item.hf_name, []).append(
            np.asarray(keras.ops.convert_to_numpy(item.variable), "float32")
        )
    tensors.update({name: np.concatenate(values, axis=-1) for name, values in parts.items()})
    return {
        name if name.startswith("lm_head.") else f"transformer.{name}": value
        for name, value in tensors.items()
    }


def save_gpt2_checkpoint(
    model,
    directory: str | os.PathLike,
    swap: int = 0,
    tokenizer_from: str | os.PathLike | None = None,
) -> Path:
    """Writes a GPT-2-shaped `Decoder` (or its `CausalLM`) as a Hugging Face `GPT2LMHeadModel`
    folder: `config.json` and `model.safetensors` (no `lm_head.weight` when tied).

    Args:
        model: the `Decoder` or its `CausalLM`.
        directory: the output folder (created).
        swap: the id the import exchanged with 0 (`kerasllm.convert.hf_id_swap(source)`: 50256
            for GPT-2).
        tokenizer_from: a checkpoint folder whose tokenizer files (`vocab.json`, `merges.txt`,
            `tokenizer.json`, `tokenizer_config.json`, ...) are copied beside the weights.

    Raises:
        ValueError: the decoder has a setting GPT-2 cannot represent (named).
    """
    decoder = decoder_of(model)
    config = hf_config_from_gpt2_decoder(decoder, eos_token_id=int(swap))
    tensors = gpt2_state_dict(decoder, swap)
    return write_checkpoint(directory, tensors, config, tokenizer_from, TOKENIZER_FILES)
