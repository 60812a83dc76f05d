"""Hugging Face BART checkpoints -> kerasllm `EncoderDecoder` + `ByteBPETokenizer` (no torch).

BART fits the seq2seq backbone's existing options: post-norm LayerNorm blocks with biases
(`norm_first=False`), learned positions per stack, a LayerNorm after each stack's embeddings
(`layernorm_embedding` = `embedding_norm`), `scale_embedding` = `embedding_scale`, tied (or
untied) output. Two things are done by the converter, not the model: BART's position tables
have 2 extra leading rows (its offset of 2: position p reads row p + 2), which are dropped, and
`final_logits_bias`, a zero buffer in published checkpoints, must be zero (refused, named,
otherwise). The tokenizer is GPT-2's byte-level BPE (`vocab.json` + `merges.txt`) with BART's
specials `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3: kerasllm pads with id 0, so ids 0 and 1 trade
places (`<pad>` is 0, `<s>` is 1) in the vocabulary and the embedding rows alike
(`hf_id_swap(folder)` = 1); every other id is Hugging Face's.

Refused, naming the key: `normalize_before` / `add_final_layer_norm` (mBART's pre-norm layout),
different encoder and decoder head counts or feed-forward widths (one `num_heads` and
`intermediate_dim` per backbone), unknown `activation_function`.

Example:
>>> from kerasllm.convert.bart import encoder_decoder_config_from_bart
>>> config = encoder_decoder_config_from_bart({"model_type": "bart", "vocab_size": 100,
...     "d_model": 32, "encoder_layers": 2, "decoder_layers": 1, "encoder_attention_heads": 4,
...     "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
...     "max_position_embeddings": 64})
>>> config["norm_first"], config["embedding_norm"], config["num_decoder_layers"]
(False, True, 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kerasllm.convert.bert import HF_ACTIVATIONS, CheckpointMismatchError
from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import (
    Assignment,
    assign_all,
    linear,
    read_weights,
    refuse,
    require,
    swap_rows,
)
from kerasllm.models import EncoderDecoder
from kerasllm.tokenizers import ByteBPETokenizer
from kerasllm.utils.files import read_json, resolve_inside

FAMILY = "BART"
MODEL_TYPES = ("bart",)
POSITION_OFFSET = 2  # BartLearnedPositionalEmbedding's offset
# BART's special tokens (the decoder's start token is config.json's decoder_start_token_id).
SPECIALS = {
    "pad": "<pad>",
    "end": "</s>",
    "unk": "<unk>",
    "mask": "<mask>",
    # BartTokenizer's cls and sep: the ids a source is framed with, `<s> text </s>`.
    "cls": "<s>",
    "sep": "</s>",
}
#: How BART's tokenizer frames a source (`Seq2SeqLMPreprocessor`'s options): `<s> text </s>`.
FRAMING = {"source_start_token": True, "source_end_token": True}


def encoder_decoder_config_from_bart(hf_config: Mapping) -> dict:
    """`EncoderDecoder` hyperparameters from a BART `config.json`.

    Raises:
        ValueError: names the config key that has no kerasllm equivalent.
    """
    if hf_config.get("model_type") not in MODEL_TYPES:
        raise refuse("model_type", hf_config.get("model_type"), f"expected {list(MODEL_TYPES)}.")
    require(
        hf_config,
        (
            "vocab_size",
            "d_model",
            "encoder_layers",
            "decoder_layers",
            "encoder_attention_heads",
            "encoder_ffn_dim",
            "max_position_embeddings",
        ),
        FAMILY,
    )
    for key in ("normalize_before", "add_final_layer_norm"):
        if hf_config.get(key):
            raise refuse(key, True, "a pre-norm (mBART) layout; BART's blocks are post-norm.")
    for key, same_as in (
        ("decoder_attention_heads", "encoder_attention_heads"),
        ("decoder_ffn_dim", "encoder_ffn_dim"),
    ):
        if hf_config.get(key, hf_config[same_as]) != hf_config[same_as]:
            raise refuse(
                key, hf_config[key], f"differs from {same_as}; kerasllm uses one value for both."
            )
    activation = hf_config.get("activation_function", "gelu")
    if activation not in HF_ACTIVATIONS:
        raise refuse("activation_function", activation, f"supported: {sorted(HF_ACTIVATIONS)}.")
    return {
        "vocabulary_size": hf_config["vocab_size"],
        "num_layers": hf_config["encoder_layers"],
        "num_decoder_layers": hf_config["decoder_layers"],
        "num_heads": hf_config["encoder_attention_heads"],
        "hidden_dim": hf_config["d_model"],
        "intermediate_dim": hf_config["encoder_ffn_dim"],
        "max_sequence_length": hf_config["max_position_embeddings"],
        "position_embedding": "learned",
        "activation": HF_ACTIVATIONS[activation],
        "dropout": float(hf_config.get("dropout", 0.1)),
        "attention_dropout": float(hf_config.get("attention_dropout", 0.0)),
        "norm_first": False,
        "norm_type": "layer",
        "layer_norm_epsilon": 1e-5,  # nn.LayerNorm's default, which BART uses
        "use_bias": True,
        "embedding_norm": True,
        "embedding_scale": bool(hf_config.get("scale_embedding", False)),
        "tie_embeddings": bool(hf_config.get("tie_word_embeddings", True)),
        "scale_tied_logits": False,
        "kernel_initializer_range": hf_config.get("init_std", 0.02),
    }


def _positions(tensor: np.ndarray) -> np.ndarray:
    return tensor[POSITION_OFFSET:]


def _norm(name: str, norm) -> list[Assignment]:
    return [Assignment(f"{name}.weight", norm.gamma), Assignment(f"{name}.bias", norm.beta)]


def _attention(prefix: str, attention) -> list[Assignment]:
    out = []
    for name, dense in (
        ("q_proj", attention.query_dense),
        ("k_proj", attention.key_dense),
        ("v_proj", attention.value_dense),
        ("out_proj", attention.output_dense),
    ):
        out.append(linear(f"{prefix}.{name}.weight", dense.kernel))
        out.append(Assignment(f"{prefix}.{name}.bias", dense.bias))
    return out


def _feed_forward(prefix: str, block) -> list[Assignment]:
    ff = block.feed_forward
    return [
        linear(f"{prefix}.fc1.weight", ff.inner_dense.kernel),
        Assignment(f"{prefix}.fc1.bias", ff.inner_dense.bias),
        linear(f"{prefix}.fc2.weight", ff.output_dense.kernel),
        Assignment(f"{prefix}.fc2.bias", ff.output_dense.bias),
        *_norm(f"{prefix}.final_layer_norm", block.feed_forward_norm),
    ]


def bart_assignments(model: EncoderDecoder, swap: int = 1) -> list[Assignment]:
    """Every `EncoderDecoder` variable and the `BartForConditionalGeneration` tensor it takes;
    `swap`: the id exchanged with 0 (BART's `<pad>`, 1)."""
    rows = swap_rows(swap)
    out = [Assignment("model.shared.weight", model.token_embedding.embeddings, rows, rows)]
    if not model.tie_embeddings:
        out.append(
            Assignment(
                "lm_head.weight",
                model.token_embedding.reverse_embeddings,
                lambda tensor: rows(tensor).T,
            )
        )
    for stack, position, norm in (
        ("encoder", model.encoder_position, model.encoder_embedding_norm),
        ("decoder", model.decoder_position, model.decoder_embedding_norm),
    ):
        out.append(
            Assignment(
                f"model.{stack}.embed_positions.weight",
                position.position_embeddings,
                _positions,
            )
        )
        out += _norm(f"model.{stack}.layernorm_embedding", norm)
    for i, block in enumerate(model.encoder_blocks):
        p = f"model.encoder.layers.{i}"
        out += _attention(f"{p}.self_attn", block.self_attention)
        out += _norm(f"{p}.self_attn_layer_norm", block.self_attention_norm)
        out += _feed_forward(p, block)
    for i, block in enumerate(model.decoder_blocks):
        p = f"model.decoder.layers.{i}"
        out += _attention(f"{p}.self_attn", block.self_attention)
        out += _norm(f"{p}.self_attn_layer_norm", block.self_attention_norm)
        out += _attention(f"{p}.encoder_attn", block.cross_attention_layer)
        out += _norm(f"{p}.encoder_attn_layer_norm", block.cross_attention_norm)
        out += _feed_forward(p, block)
    return out


def load_bart_weights(model: EncoderDecoder, tensors: Mapping[str, np.ndarray], swap: int = 1):
    """Loads a `BartForConditionalGeneration` (or `BartModel`) state dict, all or nothing.

    Raises:
        CheckpointMismatchError: a tensor is missing, misshapen or unused (named), a copy of
            the shared embeddings differs from it, or `final_logits_bias` is not zero.
    """
    tensors = {
        (
            name
            if name.startswith(("model.", "lm_head.", "final_logits_bias"))
            else f"model.{name}"
        ): v
        for name, v in tensors.items()
    }
    bias = tensors.pop("final_logits_bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise CheckpointMismatchError(
            "final_logits_bias is not zero; kerasllm's output projection has no logit bias."
        )
    copies = ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"]
    if model.tie_embeddings:
        copies.append("lm_head.weight")
    for name in copies:
        copy = tensors.pop(name, None)
        shared = tensors.get("model.shared.weight")
        if copy is not None and shared is not None and not np.array_equal(copy, shared):
            raise CheckpointMismatchError(
                f"{name} differs from model.shared.weight; kerasllm shares one embedding matrix "
                "(tie_word_embeddings=false in config.json for a separate lm_head)."
            )
    assign_all(FAMILY, bart_assignments(model, swap), tensors)


def load_bart_tokenizer(
    directory: str | os.PathLike, hf_config: Mapping | None = None
) -> tuple[ByteBPETokenizer, int]:
    """BART's byte-level BPE (`vocab.json` + `merges.txt`) with ids 0 (`<s>`) and `<pad>`'s
    exchanged, and that id (1 in published checkpoints). Roles: pad `<pad>`, end `</s>`, start
    the decoder's start token (`decoder_start_token_id`, `</s>` in published checkpoints), unk
    `<unk>`, mask `<mask>`, cls `<s>` and sep `</s>` (those the vocabulary has)."""
    directory = Path(directory)
    hf_config = read_hf_config(directory) if hf_config is None else hf_config
    vocabulary = read_json(resolve_inside(directory, "vocab.json", "vocabulary"), "vocab.json")
    if not isinstance(vocabulary, dict) or "<pad>" not in vocabulary:
        raise ValueError(f"{directory}/vocab.json must map tokens to ids, <pad> included.")
    vocabulary = {str(k): int(v) for k, v in vocabulary.items()}
    inverse = {i: token for token, i in vocabulary.items()}
    start = inverse.get(hf_config.get("decoder_start_token_id", vocabulary.get("</s>")))
    if start is None:
        raise refuse(
            "decoder_start_token_id",
            hf_config.get("decoder_start_token_id"),
            "names no token of vocab.json.",
        )
    swap = vocabulary["<pad>"]
    if swap:
        vocabulary[inverse[0]], vocabulary["<pad>"] = swap, 0
    merges = resolve_inside(directory, "merges.txt", "merges file")
    specials = {role: token for role, token in SPECIALS.items() if token in vocabulary}
    specials["start"] = start
    return ByteBPETokenizer(vocabulary, os.fspath(merges), special_tokens=specials), swap


def load_bart_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides):
    """A BART checkpoint folder as `(EncoderDecoder, ByteBPETokenizer)`.

    Example:
    >>> model, tokenizer = load_bart_checkpoint("path/to/bart-base")  # doctest: +SKIP
    """
    hf_config = read_hf_config(directory)
    model = EncoderDecoder(**{**encoder_decoder_config_from_bart(hf_config), **overrides})
    tokenizer, swap = load_bart_tokenizer(directory, hf_config)
    if weights:
        load_bart_weights(model, read_weights(directory), swap)
    return model, tokenizer
