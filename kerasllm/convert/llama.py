"""Hugging Face Llama-family checkpoints (Llama, Mistral, Qwen2) -> kerasllm `Decoder` (no torch).

Config: `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`
(grouped-query attention), `head_dim`, `intermediate_size`, `max_position_embeddings`,
`rms_norm_eps`, `rope_theta` (or transformers 5's `rope_parameters`), `tie_word_embeddings`,
`attention_bias`/`mlp_bias` map to a pre-norm RMSNorm `Decoder` with rotary positions, a SwiGLU
feed-forward and a final RMSNorm; Qwen2's biases on the query, key and value projections only
map to the `Decoder`'s `qkv_bias=True` (with `use_bias=False`). Weights: `nn.Linear` (out, in)
tensors are transposed to Keras (in, out) kernels; `gate_proj` is the activated projection
(`gate_dense`), `up_proj` the linear one (`inner_dense`), `lm_head` the untied output matrix.
The tokenizer is a byte-level BPE `tokenizer.json` (SmolLM, Llama 3, Qwen2 style) or a
SentencePiece `tokenizer.model` (Llama 1/2, Mistral). `save_llama_checkpoint` writes such a
`Decoder` back as a `LlamaForCausalLM` folder (a `Qwen2ForCausalLM` one when it has `qkv_bias`
without `use_bias`).

Rope scaling "linear" and "llama3" map to `rotary_scaling`. Refused, naming the key: other rope
scalings (`rope_scaling` / `rope_parameters.rope_type`: dynamic, yarn, longrope), Mistral's
`sliding_window` when shorter than the context (Qwen2's when `use_sliding_window` or
`layer_types` switch it on for some layer), an activation other than SiLU, and `attention_bias`
without `mlp_bias` (or the reverse).

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
from pathlib import Path

import numpy as np
import sentencepiece as spm

from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import (
    Assignment,
    assign_all,
    byte_bpe_from_tokenizer_json,
    decoder_of,
    drop_tied_head,
    embedding_assignments,
    end_token,
    linear,
    load_decoder_checkpoint,
    refuse,
    require,
    state_dict,
    swap_ids,
    write_checkpoint,
)
from kerasllm.convert.layer_shapes import uniform_block_shape
from kerasllm.layers.embeddings import ROPE_SCALINGS, check_rope_scaling
from kerasllm.models import Decoder
from kerasllm.tokenizers import SentencePieceTokenizer
from kerasllm.utils.files import read_json, resolve_inside

FAMILY = "Llama"
MODEL_TYPES = ("llama", "mistral", "qwen2")
# Llama-shaped model types kerasllm knows it cannot represent, and why.
NOT_MAPPED: dict[str, str] = {}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
)
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
        if model_type in NOT_MAPPED:
            reason += " " + NOT_MAPPED[model_type]
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
    qwen2 = model_type == "qwen2"
    # Qwen2 always has query/key/value biases and no other (its config has no bias keys).
    attention_bias = False if qwen2 else bool(hf_config.get("attention_bias", False))
    if not qwen2 and attention_bias != bool(hf_config.get("mlp_bias", False)):
        raise refuse(
            "attention_bias",
            attention_bias,
            f"with mlp_bias={hf_config.get('mlp_bias', False)!r}: kerasllm's use_bias applies to "
            "attention and feed-forward together.",
        )
    max_length = hf_config.get("max_position_embeddings", 2048)
    window = hf_config.get("sliding_window")
    key = "sliding_window"
    if qwen2:
        # Qwen2's window applies only to the layers it switches on: `layer_types` (transformers
        # 5), else `use_sliding_window` for the layers from `max_window_layers` on.
        layer_types = hf_config.get("layer_types")
        if layer_types is not None:
            key, active = "layer_types", "sliding_attention" in layer_types
        else:
            key = "use_sliding_window"
            active = bool(hf_config.get("use_sliding_window", False)) and hf_config.get(
                "max_window_layers", 28
            ) < hf_config.get("num_hidden_layers", 0)
        window = window if active else None
    if window is not None and window < max_length:
        raise refuse(
            key,
            hf_config.get(key),
            f"turns on sliding_window={window}, below max_position_embeddings ({max_length}); "
            "kerasllm attends to the whole context.",
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
        "qkv_bias": qwen2,
        "embedding_norm": False,
        "embedding_scale": False,
        "tie_embeddings": bool(hf_config.get("tie_word_embeddings", False)),
        "scale_tied_logits": False,
        "kernel_initializer_range": hf_config.get("initializer_range", 0.02),
    }


def llama_assignments(decoder: Decoder, swap: int = 0) -> list[Assignment]:
    """Every `Decoder` variable and the Llama tensor (`LlamaForCausalLM` name) it takes;
    `swap`: the vocabulary id exchanged with 0 (see `kerasllm.convert.hf_decoder.pad_swap`).
    Every transform is invertible, so the same list exports (`llama_state_dict`)."""
    out = [
        *embedding_assignments(decoder, "model.embed_tokens.weight", swap),
        Assignment("model.norm.weight", decoder.final_norm.scale),
    ]
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
        for j, (name, dense) in enumerate(denses):
            out.append(linear(f"{p}.{name}.weight", dense.kernel))
            # The first three are q/k/v, which `qkv_bias` (Qwen2) gives biases alone.
            if decoder.use_bias or (j < 3 and decoder.qkv_bias):
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
    canonical = drop_tied_head(canonical, decoder, "model.embed_tokens.weight")
    assign_all(FAMILY, llama_assignments(decoder, swap), canonical, ignored=_BUFFER.match)


SPM_FILE = "tokenizer.model"


def _byte_level(directory: Path) -> bool:
    """Whether the folder's `tokenizer.json` is a byte-level BPE (SmolLM / Llama 3 style)."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return False
    spec = read_json(path, "tokenizer.json")
    return (spec.get("pre_tokenizer") or {}).get("type") == "ByteLevel"


def llama_sentencepiece_tokenizer(
    directory: str | os.PathLike, hf_config: Mapping
) -> tuple[SentencePieceTokenizer, int]:
    """(`SentencePieceTokenizer`, 0) from a Llama 1/2-style `tokenizer.model`: ids identical to
    Hugging Face's; roles start `<s>` (prompts begin with it, as `LlamaTokenizer` adds it), end
    `</s>`, unk and pad the piece at id 0 (`<unk>`: kerasllm pads with id 0, masked in the model
    and dropped when detokenizing).

    Raises:
        ValueError: the model has no end-of-sequence piece (`eos_token_id`).
    """
    directory = Path(directory)
    path = resolve_inside(directory, SPM_FILE, "SentencePiece model")
    model = path.read_bytes()
    processor = spm.SentencePieceProcessor(model_proto=model)
    vocabulary = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    end = end_token(directory, hf_config, vocabulary)
    specials = {"pad": processor.id_to_piece(0), "end": end}
    if processor.unk_id() >= 0:
        specials["unk"] = processor.id_to_piece(processor.unk_id())
    if processor.bos_id() >= 0:
        specials["start"] = processor.id_to_piece(processor.bos_id())
    return SentencePieceTokenizer(model, special_tokens=specials), 0


def load_llama_tokenizer(directory: str | os.PathLike, hf_config: Mapping) -> tuple:
    """(tokenizer, id exchanged with 0) of a Llama-family folder: a byte-level BPE
    `tokenizer.json` (`byte_bpe_from_tokenizer_json`), else a SentencePiece `tokenizer.model`
    (`llama_sentencepiece_tokenizer`; Llama 1/2, Mistral), else the `tokenizer.json` refusal."""
    directory = Path(directory)
    if not _byte_level(directory) and (directory / SPM_FILE).is_file():
        return llama_sentencepiece_tokenizer(directory, hf_config)
    if not (directory / "tokenizer.json").is_file():
        raise ValueError(
            f"{directory} has neither tokenizer.json (byte-level BPE) nor {SPM_FILE} "
            "(SentencePiece): kerasllm cannot build its tokenizer."
        )
    return byte_bpe_from_tokenizer_json(directory, hf_config)


def _template_starts_with_special(post_processor) -> bool:
    """Whether a `tokenizer.json` post-processor puts a special token before each text (Llama
    3's `<|begin_of_text|>`), looking inside a `Sequence` of processors too."""
    if not isinstance(post_processor, dict):
        return False
    if post_processor.get("type") == "Sequence":
        return any(map(_template_starts_with_special, post_processor.get("processors") or []))
    if post_processor.get("type") != "TemplateProcessing":
        return False
    single = post_processor.get("single")
    return bool(single) and isinstance(single[0], dict) and "SpecialToken" in single[0]


def llama_framing(directory: str | os.PathLike, tokenizer) -> dict:
    """How the folder's Hugging Face tokenizer frames a prompt, as `CausalLMPreprocessor`
    options: `add_start_token` when it puts the start token first (a SentencePiece
    `LlamaTokenizer` does unless `tokenizer_config.json` sets `add_bos_token` false; a
    `tokenizer.json` does when its post-processor's template starts with a special token, as
    Llama 3's does, and not for Qwen2 or SmolLM), and the tokenizer has a start token."""
    directory = Path(directory)
    if tokenizer.start_id is None:
        return {"add_start_token": False}
    if not _byte_level(directory) and (directory / SPM_FILE).is_file():
        config_path = directory / "tokenizer_config.json"
        config = read_json(config_path, "tokenizer_config.json") if config_path.is_file() else {}
        add = config.get("add_bos_token", True) if isinstance(config, dict) else True
        return {"add_start_token": bool(add)}
    content = read_json(resolve_inside(directory, "tokenizer.json", "tokenizer"), "tokenizer.json")
    post = content.get("post_processor") if isinstance(content, dict) else None
    return {"add_start_token": _template_starts_with_special(post)}


def load_llama_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides):
    """A Llama/Mistral checkpoint folder as `(Decoder, tokenizer)`.

    Args:
        directory: `config.json`, weights, and a byte-level BPE `tokenizer.json` or a
            SentencePiece `tokenizer.model` (see `load_llama_tokenizer`).
        weights: False keeps random weights (no tensor read).
        **overrides: hyperparameters that keep the weights' shapes (`dropout`, `dtype`).

    Example:
    >>> decoder, tokenizer = load_llama_checkpoint("path/to/SmolLM-135M")  # doctest: +SKIP
    """
    return load_decoder_checkpoint(
        directory,
        decoder_config_from_llama,
        load_llama_tokenizer,
        load_llama_weights,
        weights,
        **overrides,
    )


# ------------------------------------------------------------------------- export
# Decoder settings a `LlamaForCausalLM` has no form for, and the value it needs.
_EXPORT_FIXED = {
    "position_embedding": "rotary",
    "activation": "swiglu",
    "norm_type": "rms",
    "norm_first": True,
    "embedding_norm": False,
    "embedding_scale": False,
    "attention_scale": None,
}


def hf_config_from_llama_decoder(decoder: Decoder, eos_token_id: int | list[int] = 0) -> dict:
    """The `config.json` of a `LlamaForCausalLM` computing what `decoder` computes.

    Args:
        decoder: a Llama-shaped `Decoder` (what `decoder_config_from_llama` builds).
        eos_token_id: the end-of-sequence id in the exported numbering (also pad).

    Raises:
        ValueError: names the `Decoder` setting Llama has no form for.

    Example:
    >>> decoder = Decoder(**decoder_config_from_llama({"model_type": "llama",
    ...     "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
    ...     "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32}))
    >>> config = hf_config_from_llama_decoder(decoder)
    >>> config["model_type"], config["num_key_value_heads"], config["tie_word_embeddings"]
    ('llama', 2, False)
    """
    for key, value in _EXPORT_FIXED.items():
        if getattr(decoder, key) != value:
            raise ValueError(
                f"A Llama checkpoint needs the Decoder's {key}={value!r}; this one has "
                f"{key}={getattr(decoder, key)!r}."
            )
    if decoder.tie_embeddings and decoder.scale_tied_logits:
        raise ValueError(
            "A Llama checkpoint does not rescale tied logits; this Decoder has "
            "scale_tied_logits=True."
        )
    # `layer_shapes` (structured pruning): Llama's config has one shape for all layers, and
    # its explicit head_dim lets num_heads x head_dim be less than hidden_size.
    shape = uniform_block_shape(decoder, "Llama")
    rope = {"rope_type": "default", "rope_theta": float(decoder.rotary_max_wavelength)}
    if decoder.rotary_scaling:
        rope.update(decoder.rotary_scaling)
    # Biases on q/k/v alone are Qwen2's layout (Llama's attention_bias also covers o_proj).
    qwen2 = bool(decoder.qkv_bias) and not decoder.use_bias
    config = {
        "architectures": ["Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen2 else "llama",
        "vocab_size": decoder.vocabulary_size,
        "hidden_size": decoder.hidden_dim,
        "num_hidden_layers": decoder.num_layers,
        "num_attention_heads": shape["num_heads"],
        "num_key_value_heads": shape["num_key_value_heads"],
        "head_dim": shape["head_dim"],
        "intermediate_size": shape["intermediate_dim"],
        "max_position_embeddings": decoder.max_sequence_length,
        "hidden_act": "silu",
        "rms_norm_eps": decoder.layer_norm_epsilon,
        # transformers 5 reads `rope_parameters`, transformers 4 `rope_theta` + `rope_scaling`.
        "rope_parameters": rope,
        "rope_theta": rope["rope_theta"],
        "rope_scaling": dict(decoder.rotary_scaling) if decoder.rotary_scaling else None,
        "attention_bias": bool(decoder.use_bias),
        "mlp_bias": bool(decoder.use_bias),
        "attention_dropout": float(decoder.attention_dropout or 0.0),
        "tie_word_embeddings": bool(decoder.tie_embeddings),
        "initializer_range": decoder.kernel_initializer_range,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": eos_token_id,
        "dtype": "float32",
    }
    if qwen2:
        for key in ("attention_bias", "mlp_bias"):
            del config[key]
        config.update(use_sliding_window=False, sliding_window=None)
        config["layer_types"] = ["full_attention"] * decoder.num_layers
        config["max_window_layers"] = decoder.num_layers
    return config


def llama_state_dict(decoder: Decoder, swap: int = 0) -> dict[str, np.ndarray]:
    """The decoder's weights under `LlamaForCausalLM` names, in Hugging Face's id numbering
    (rows 0 and `swap` exchanged back); no `lm_head.weight` when tied (transformers ties it)."""
    return state_dict(FAMILY, llama_assignments(decoder, swap))


def save_llama_checkpoint(
    model,
    directory: str | os.PathLike,
    swap: int = 0,
    tokenizer_from: str | os.PathLike | None = None,
) -> Path:
    """Writes a Llama-shaped `Decoder` (or a `CausalLM` around one) as a Hugging Face
    `LlamaForCausalLM` folder (`Qwen2ForCausalLM` for `qkv_bias` without `use_bias`):
    `config.json` and `model.safetensors`.

    Args:
        model: the `Decoder` or its `CausalLM`.
        directory: the output folder (created).
        swap: the id the import exchanged with 0 (`kerasllm.convert.hf_id_swap(source)`; 0,
            the default, for models whose end token already is id 0, or trained in kerasllm).
        tokenizer_from: a checkpoint folder whose tokenizer files (`tokenizer.json`,
            `tokenizer_config.json`, `special_tokens_map.json`, `tokenizer.model`) are copied
            beside the weights, so `load_llama_checkpoint` and `AutoTokenizer` read the result.

    Returns:
        The folder.

    Raises:
        ValueError: the decoder has a setting Llama cannot represent (named).

    Example:
    >>> import tempfile
    >>> decoder = Decoder(**decoder_config_from_llama({"model_type": "llama",
    ...     "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
    ...     "num_attention_heads": 4, "intermediate_size": 32}))
    >>> folder = save_llama_checkpoint(decoder, tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['config.json', 'model.safetensors']
    """
    decoder = decoder_of(model)
    # The end token (Hugging Face ids): the attached tokenizer's, else the tokenizer source's
    # config.json's, else kerasllm's id 0.
    tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    if getattr(tokenizer, "end_id", None) is not None:
        eos = int(swap_ids(tokenizer.end_id, swap))
    elif tokenizer_from is not None and (Path(tokenizer_from) / "config.json").is_file():
        eos = read_hf_config(tokenizer_from).get("eos_token_id", int(swap))
    else:
        eos = int(swap)
    config = hf_config_from_llama_decoder(decoder, eos_token_id=eos)
    tensors = llama_state_dict(decoder, swap)
    return write_checkpoint(directory, tensors, config, tokenizer_from, TOKENIZER_FILES)
