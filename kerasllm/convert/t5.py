"""Hugging Face T5 checkpoints (v1.0 and v1.1) -> kerasllm `EncoderDecoder` (no torch).

Config: `d_model`, `d_kv` (head_dim), `d_ff`, `num_layers`, `num_decoder_layers`, `num_heads`,
`relative_attention_num_buckets`, `relative_attention_max_distance`, `layer_norm_epsilon`,
`dropout_rate`, `feed_forward_proj` ("relu" for v1.0, "gated-gelu" for v1.1, ...) and
`tie_word_embeddings` / `scale_decoder_outputs` map to a pre-norm RMSNorm `EncoderDecoder`
without biases, with bucketed relative position bias (one table per stack, as T5 keeps it in
each stack's first block), unscaled attention logits, and the output projection either tied
and rescaled by `d_model ** -0.5` (v1.0) or a separate `lm_head` (v1.1). Weights: `nn.Linear`
tensors are transposed; `wi_0` is the activated gate projection (`gate_dense`), `wi_1` the linear
one (`inner_dense`). The tokenizer is the checkpoint's `spiece.model` (`SentencePieceTokenizer`,
roles pad `<pad>` = decoder start, end `</s>`, unk `<unk>`).

T5's 100 `<extra_id_*>` sentinels, which only the Hugging Face tokenizer adds, are appended to
`spiece.model` at Hugging Face's ids (`<extra_id_0>` = 32099 for published checkpoints), and
the 28 ids up to `vocab_size` 32128 as unused pieces, so the tokenizer covers the model's
vocabulary exactly. Refused, naming the key: `feed_forward_proj` activations kerasllm has no
gated/plain form for, `is_decoder`-only configs, sentinel ids that do not follow the pieces.

Example:
>>> from kerasllm.convert.t5 import encoder_decoder_config_from_t5
>>> config = encoder_decoder_config_from_t5({"model_type": "t5", "vocab_size": 100,
...     "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
...     "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False})
>>> config["activation"], config["head_dim"], config["tie_embeddings"]
('geglu', 8, False)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from kerasllm.convert.bert import CheckpointMismatchError
from kerasllm.convert.checkpoint import read_hf_config
from kerasllm.convert.hf_decoder import Assignment, assign_all, read_weights, refuse, require
from kerasllm.models import EncoderDecoder
from kerasllm.tokenizers import SentencePieceTokenizer
from kerasllm.utils.files import read_json, resolve_inside

FAMILY = "T5"
MODEL_TYPES = ("t5",)
SPM_FILE = "spiece.model"
#: How T5's tokenizer frames a source (`Seq2SeqLMPreprocessor`'s options): `text </s>`.
FRAMING = {"source_end_token": True}
# (gated, Hugging Face activation) -> kerasllm activation.
_ACTIVATIONS = {
    (False, "relu"): "relu",
    (False, "gelu"): "gelu",
    (False, "gelu_new"): "gelu_approximate",
    (False, "silu"): "silu",
    (True, "relu"): "reglu",
    (True, "gelu_new"): "geglu",
    (True, "gelu"): "geglu",
    (True, "silu"): "swiglu",
}
_ACTIVATION_ALIASES = {"gelu": "gelu_new"}  # T5's "gated-gelu" means the tanh GELU


def _activation(hf_config: Mapping) -> str:
    proj = hf_config.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    name = proj.split("-")[-1]
    if gated:
        name = _ACTIVATION_ALIASES.get(name, name)
    if (gated, name) not in _ACTIVATIONS:
        raise refuse(
            "feed_forward_proj",
            proj,
            "supported: relu, gelu, gelu_new, silu, and their gated-* forms.",
        )
    return _ACTIVATIONS[(gated, name)]


def encoder_decoder_config_from_t5(hf_config: Mapping) -> dict:
    """`EncoderDecoder` hyperparameters from a T5 `config.json` (v1.0 or v1.1).

    Raises:
        ValueError: names the config key that has no kerasllm equivalent.
    """
    if hf_config.get("model_type") not in MODEL_TYPES:
        raise refuse("model_type", hf_config.get("model_type"), f"expected {list(MODEL_TYPES)}.")
    require(hf_config, ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"), FAMILY)
    if hf_config.get("is_decoder"):
        raise refuse("is_decoder", True, "a decoder-only T5 is not an encoder-decoder.")
    tied = bool(hf_config.get("tie_word_embeddings", True))
    # transformers 5 always ties and records the v1.0 rescaling as `scale_decoder_outputs`.
    scale = bool(hf_config.get("scale_decoder_outputs", tied))
    if scale and not tied:
        raise refuse(
            "scale_decoder_outputs", True, "with untied embeddings (tie_word_embeddings=false)."
        )
    dropout = float(hf_config.get("dropout_rate", 0.1))
    return {
        "vocabulary_size": hf_config["vocab_size"],
        "num_layers": hf_config["num_layers"],
        "num_decoder_layers": hf_config.get("num_decoder_layers") or hf_config["num_layers"],
        "num_heads": hf_config["num_heads"],
        "hidden_dim": hf_config["d_model"],
        "head_dim": hf_config["d_kv"],
        "intermediate_dim": hf_config["d_ff"],
        "max_sequence_length": hf_config.get("n_positions", 512),
        "position_embedding": "relative",
        "relative_num_buckets": hf_config.get("relative_attention_num_buckets", 32),
        "relative_max_distance": hf_config.get("relative_attention_max_distance", 128),
        "activation": _activation(hf_config),
        "dropout": dropout,
        "attention_dropout": dropout,
        "norm_first": True,
        "norm_type": "rms",
        "layer_norm_epsilon": hf_config.get("layer_norm_epsilon", 1e-6),
        "use_bias": False,
        "embedding_norm": False,
        "embedding_scale": False,
        "tie_embeddings": tied,
        "scale_tied_logits": scale,
        "attention_scale": 1.0,
        "kernel_initializer_range": hf_config.get("initializer_factor", 1.0) * 0.05,
    }


def _attention(prefix: str, attention) -> list[Assignment]:
    return [
        Assignment(f"{prefix}.{name}.weight", dense.kernel, np.transpose)
        for name, dense in (
            ("q", attention.query_dense),
            ("k", attention.key_dense),
            ("v", attention.value_dense),
            ("o", attention.output_dense),
        )
    ]


def _feed_forward(prefix: str, ff) -> list[Assignment]:
    out = [Assignment(f"{prefix}.wo.weight", ff.output_dense.kernel, np.transpose)]
    if ff.gated:
        out.append(Assignment(f"{prefix}.wi_0.weight", ff.gate_dense.kernel, np.transpose))
        out.append(Assignment(f"{prefix}.wi_1.weight", ff.inner_dense.kernel, np.transpose))
    else:
        out.append(Assignment(f"{prefix}.wi.weight", ff.inner_dense.kernel, np.transpose))
    return out


def t5_assignments(model: EncoderDecoder) -> list[Assignment]:
    """Every `EncoderDecoder` variable and the T5 tensor it takes."""
    out = [
        Assignment("shared.weight", model.token_embedding.embeddings),
        Assignment("encoder.final_layer_norm.weight", model.encoder_final_norm.scale),
        Assignment("decoder.final_layer_norm.weight", model.decoder_final_norm.scale),
        Assignment(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            model.encoder_relative_bias.bias,
        ),
        Assignment(
            "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            model.decoder_relative_bias.bias,
        ),
    ]
    if not model.tie_embeddings:
        out.append(
            Assignment("lm_head.weight", model.token_embedding.reverse_embeddings, np.transpose)
        )
    for i, block in enumerate(model.encoder_blocks):
        p = f"encoder.block.{i}.layer"
        out += _attention(f"{p}.0.SelfAttention", block.self_attention)
        out.append(Assignment(f"{p}.0.layer_norm.weight", block.self_attention_norm.scale))
        out += _feed_forward(f"{p}.1.DenseReluDense", block.feed_forward)
        out.append(Assignment(f"{p}.1.layer_norm.weight", block.feed_forward_norm.scale))
    for i, block in enumerate(model.decoder_blocks):
        p = f"decoder.block.{i}.layer"
        out += _attention(f"{p}.0.SelfAttention", block.self_attention)
        out.append(Assignment(f"{p}.0.layer_norm.weight", block.self_attention_norm.scale))
        out += _attention(f"{p}.1.EncDecAttention", block.cross_attention_layer)
        out.append(Assignment(f"{p}.1.layer_norm.weight", block.cross_attention_norm.scale))
        out += _feed_forward(f"{p}.2.DenseReluDense", block.feed_forward)
        out.append(Assignment(f"{p}.2.layer_norm.weight", block.feed_forward_norm.scale))
    return out


def load_t5_weights(model: EncoderDecoder, tensors: Mapping[str, np.ndarray]) -> None:
    """Loads a `T5ForConditionalGeneration` (or `T5Model`) state dict, all or nothing.

    Raises:
        CheckpointMismatchError: a tensor is missing, misshapen or unused (named), or a copy of
            the shared embeddings (`encoder.embed_tokens`, a tied `lm_head`) differs from it.
    """
    tensors = dict(tensors)
    copies = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
    if model.tie_embeddings:
        copies.append("lm_head.weight")
    for name in copies:
        if name in tensors:
            copy = tensors.pop(name)
            if "shared.weight" in tensors and not np.array_equal(copy, tensors["shared.weight"]):
                raise CheckpointMismatchError(
                    f"{name} differs from shared.weight; kerasllm shares one embedding matrix "
                    "(set tie_word_embeddings=false in config.json for a separate lm_head)."
                )
    assign_all(FAMILY, t5_assignments(model), tensors)


_SENTINEL = re.compile(r"^<extra_id_(\d+)>$")


def _listed_sentinels(directory: Path) -> tuple[str, dict[int, str]] | None:
    """`{id: "<extra_id_N>"}` as the checkpoint's tokenizer files list them (`tokenizer.json`
    `added_tokens`, else `tokenizer_config.json` `added_tokens_decoder`), with the key read."""
    path = directory / "tokenizer.json"
    if path.is_file():
        added = read_json(path, "tokenizer.json").get("added_tokens") or []
        found = {
            int(t["id"]): t["content"] for t in added if _SENTINEL.match(str(t.get("content")))
        }
        if found:
            return "tokenizer.json added_tokens", found
    path = directory / "tokenizer_config.json"
    if path.is_file():
        decoder = read_json(path, "tokenizer_config.json").get("added_tokens_decoder") or {}
        found = {
            int(i): t["content"]
            for i, t in decoder.items()
            if isinstance(t, dict) and _SENTINEL.match(str(t.get("content")))
        }
        if found:
            return "tokenizer_config.json added_tokens_decoder", found
    return None


def t5_sentinels(directory: str | os.PathLike, pieces: int, vocab_size: int) -> dict[int, str]:
    """`{id: "<extra_id_N>"}`: T5's sentinel tokens at Hugging Face's ids.

    From the tokenizer files when they list them, else `T5Tokenizer`'s rule: `extra_ids`
    (tokenizer_config.json; default 100 when `vocab_size` has room for them, else 0) ids after
    the `pieces` of `spiece.model`, in reverse (`<extra_id_0>` last: 32099 for T5).

    Raises:
        ValueError: the ids do not directly follow the pieces or exceed `vocab_size` (named).
    """
    directory = Path(directory)
    listed = _listed_sentinels(directory)
    if listed is None:
        path = directory / "tokenizer_config.json"
        options = read_json(path, "tokenizer_config.json") if path.is_file() else {}
        default = 100 if vocab_size >= pieces + 100 else 0
        extra = options.get("extra_ids", default)
        if not isinstance(extra, int) or extra < 0:
            raise refuse("extra_ids", extra, "expected an int >= 0 (tokenizer_config.json).")
        key = "extra_ids"
        found = {pieces + extra - 1 - i: f"<extra_id_{i}>" for i in range(extra)}
    else:
        key, found = listed
    if found and sorted(found) != list(range(pieces, pieces + len(found))):
        raise refuse(
            key,
            f"ids {min(found)}..{max(found)}",
            f"kerasllm appends T5's sentinels to spiece.model's {pieces} pieces, so their ids "
            f"must be {pieces}..{pieces + len(found) - 1}.",
        )
    if pieces + len(found) > vocab_size:
        raise refuse(
            "vocab_size",
            vocab_size,
            f"smaller than spiece.model's {pieces} pieces + {len(found)} sentinels.",
        )
    return found


def t5_sentencepiece_model(model: bytes, sentinels: Mapping[int, str], vocab_size: int) -> bytes:
    """`model` (a serialized `spiece.model`) with the sentinels appended as user-defined pieces
    (never split in text, as Hugging Face's added tokens) and, up to `vocab_size`, unused
    pieces `<unused_i>` (ids the model has logits for but no tokenizer produces: T5's 32100 to
    32127)."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model)
    kinds = sentencepiece_model_pb2.ModelProto.SentencePiece
    for i in sorted(sentinels):
        proto.pieces.add(piece=sentinels[i], score=0.0, type=kinds.USER_DEFINED)
    for i in range(len(proto.pieces), vocab_size):
        proto.pieces.add(piece=f"<unused_{i}>", score=0.0, type=kinds.UNUSED)
    return proto.SerializeToString()


def load_t5_tokenizer(
    directory: str | os.PathLike, hf_config: Mapping | None = None
) -> SentencePieceTokenizer:
    """The checkpoint's `spiece.model` with T5's roles (pad `<pad>` = decoder start, id 0; end
    `</s>`; unk `<unk>`) and its sentinels `<extra_id_N>` at Hugging Face's ids
    (`t5_sentinels`), padded with unused ids to `config.json`'s `vocab_size`, so its ids are
    exactly the model's vocabulary and `kerasllm.data.span_corruption_dataset` works with it."""
    directory = Path(directory)
    hf_config = read_hf_config(directory) if hf_config is None else hf_config
    path = resolve_inside(directory, SPM_FILE, "SentencePiece model")
    model = path.read_bytes()
    pieces = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    vocab_size = int(hf_config.get("vocab_size", pieces))
    if vocab_size > pieces:
        sentinels = t5_sentinels(directory, pieces, vocab_size)
        model = t5_sentencepiece_model(model, sentinels, vocab_size)
    specials = {"pad": "<pad>", "start": "<pad>", "end": "</s>", "unk": "<unk>"}
    return SentencePieceTokenizer(model, special_tokens=specials)


def load_t5_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides):
    """A T5 checkpoint folder as `(EncoderDecoder, SentencePieceTokenizer)`.

    Example:
    >>> model, tokenizer = load_t5_checkpoint("path/to/t5-small")  # doctest: +SKIP
    """
    hf_config = read_hf_config(directory)
    model = EncoderDecoder(**{**encoder_decoder_config_from_t5(hf_config), **overrides})
    if weights:
        load_t5_weights(model, read_weights(directory))
    return model, load_t5_tokenizer(directory, hf_config)
