"""The BERT-family mapping between Hugging Face checkpoints and kerasllm's `Encoder`.

Two halves, each explicit:
- config: Hugging Face `config.json` fields <-> `Encoder` hyperparameters
  (`encoder_config_from_hf`, `hf_config_from_encoder`);
- weights: one `TensorMapping` per tensor, from the Hugging Face `BertModel` name to the
  `Encoder` variable it fills (`bert_tensor_mappings`). Hugging Face `nn.Linear` weights are
  stored (out, in) and Keras `Dense` kernels (in, out), so those are transposed.

`load_bert_weights` checks every name and shape before assigning anything, so a checkpoint that
does not fit raises `CheckpointMismatchError` naming the first offending tensor and leaves the
encoder untouched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import keras
import numpy as np

from kerasllm.convert.layer_shapes import uniform_block_shape
from kerasllm.models import Encoder

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("bert",)
# Prefix of the backbone's tensors in task checkpoints (BertForMaskedLM, BertForSequence...).
BACKBONE_PREFIX = "bert."
# Registered buffers that some Hugging Face versions save alongside the weights.
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
# Original TF-BERT conversions name LayerNorm parameters gamma/beta.
_LAYER_NORM_ALIASES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}

# Hugging Face `hidden_act` -> kerasllm activation. The three tanh approximations of GELU are
# the same function.
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
_EXPORT_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_approximate": "gelu_new",
    "relu": "relu",
    "silu": "silu",
}

# Encoder hyperparameters that a BERT checkpoint fixes (the BERT architecture itself).
BERT_ARCHITECTURE = dict(
    position_embedding="learned",
    norm_first=False,
    norm_type="layer",
    embedding_norm=True,
    embedding_scale=False,
    use_bias=True,
    head_dim=None,
    num_key_value_heads=None,
    attention_scale=None,
)


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit the model: a tensor is missing, has the wrong shape,
    or has no counterpart. Nothing was loaded."""


@dataclasses.dataclass(frozen=True)
class TensorMapping:
    """One checkpoint tensor and the Keras variable it fills.

    Attributes:
        hf_name: the tensor's name in a Hugging Face `BertModel` state dict.
        variable: the `keras.Variable` of the `Encoder`.
        transpose: whether the tensor is a `nn.Linear` weight, stored (out, in).
    """

    hf_name: str
    variable: keras.Variable
    transpose: bool = False

    def to_keras(self, tensor: np.ndarray) -> np.ndarray:
        return tensor.T if self.transpose else tensor

    def to_hf(self, value: np.ndarray) -> np.ndarray:
        return value.T if self.transpose else value


# ----------------------------------------------------------------------------- config
def encoder_config_from_hf(hf_config: Mapping, pooler: bool = True) -> dict:
    """`Encoder` hyperparameters from a Hugging Face BERT `config.json`.

    Args:
        hf_config: the parsed `config.json`.
        pooler: whether the checkpoint has a pooler (`pooler.dense.*`); config.json does not say.

    Returns:
        A complete `Encoder` config (architecture switches included).

    Raises:
        ValueError: the config is not a BERT-family encoder this `Encoder` can represent.

    Example:
    >>> config = encoder_config_from_hf({"model_type": "bert", "vocab_size": 100,
    ...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "intermediate_size": 64, "max_position_embeddings": 64})
    >>> config["hidden_dim"], config["activation"], config["num_segments"]
    (32, 'gelu', 2)
    """
    model_type = hf_config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"Unsupported model_type {model_type!r} in config.json; this converter reads "
            f"{list(SUPPORTED_MODEL_TYPES)} checkpoints (BERT, MiniLM and other BertModel "
            "architectures)."
        )
    required = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
    )
    missing = [key for key in required if key not in hf_config]
    if missing:
        raise ValueError(f"config.json lacks the required fields {missing}.")
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(
            f"position_embedding_type={position_type!r} is not supported; the Encoder "
            "implements BERT's absolute learned positions only."
        )
    for flag in ("is_decoder", "add_cross_attention"):
        if hf_config.get(flag):
            raise ValueError(f"config.json sets {flag}=True: not a bidirectional encoder.")
    hidden_act = hf_config.get("hidden_act", "gelu")
    if hidden_act not in HF_ACTIVATIONS:
        raise ValueError(
            f"Unsupported hidden_act {hidden_act!r}; supported: {sorted(HF_ACTIVATIONS)}."
        )
    return {
        "vocabulary_size": hf_config["vocab_size"],
        "num_layers": hf_config["num_hidden_layers"],
        "num_heads": hf_config["num_attention_heads"],
        "hidden_dim": hf_config["hidden_size"],
        "intermediate_dim": hf_config["intermediate_size"],
        "max_sequence_length": hf_config.get("max_position_embeddings", 512),
        "num_segments": hf_config.get("type_vocab_size", 2),
        "activation": HF_ACTIVATIONS[hidden_act],
        "dropout": hf_config.get("hidden_dropout_prob", 0.1),
        "attention_dropout": hf_config.get("attention_probs_dropout_prob", 0.1),
        "layer_norm_epsilon": hf_config.get("layer_norm_eps", 1e-12),
        "kernel_initializer_range": hf_config.get("initializer_range", 0.02),
        "pooler": bool(pooler),
        **BERT_ARCHITECTURE,
    }


def check_bert_shaped(encoder: Encoder) -> None:
    """Raises a ValueError unless `encoder` has the BERT architecture a checkpoint describes."""
    if not isinstance(encoder, Encoder):
        raise ValueError(f"Expected a kerasllm Encoder; got {type(encoder).__name__}.")
    head_dim = encoder.hidden_dim // encoder.num_heads
    allowed = {
        **BERT_ARCHITECTURE,
        "head_dim": (None, head_dim),
        "num_key_value_heads": (None, encoder.num_heads),
    }
    for key, expected in allowed.items():
        choices = expected if isinstance(expected, tuple) else (expected,)
        if getattr(encoder, key) not in choices:
            raise ValueError(
                f"This Encoder is not BERT-shaped: {key}={getattr(encoder, key)!r}, but a BERT "
                f"checkpoint needs {key} in {list(choices)}."
            )
    if encoder.activation not in _EXPORT_ACTIVATIONS:
        raise ValueError(
            f"Activation {encoder.activation!r} has no BERT equivalent; use one of "
            f"{sorted(_EXPORT_ACTIVATIONS)}."
        )
    if encoder.num_segments < 1:
        raise ValueError("A BERT checkpoint needs segment embeddings (num_segments >= 1).")
    # `layer_shapes` (structured pruning): one shape for all layers, and BERT's attention spans
    # the whole width (head width hidden_size / num_attention_heads).
    shape = uniform_block_shape(encoder, "BERT")
    if (
        shape["num_heads"] != encoder.num_heads
        or shape["num_key_value_heads"] != shape["num_heads"]
    ):
        raise ValueError(
            f"A BERT checkpoint needs num_heads x head_dim = hidden_dim ({encoder.hidden_dim}); "
            f"this model's `layer_shapes` give every block {shape['num_heads']} heads of width "
            f"{shape['head_dim']} (attention heads were pruned). Prune feed-forward units only "
            "(heads_fraction=0) to export BERT."
        )


def hf_config_from_encoder(encoder: Encoder) -> dict:
    """The Hugging Face `config.json` of a BERT-shaped `Encoder` (a `BertModel`).

    Raises:
        ValueError: the encoder uses a switch BERT does not have (pre-norm, rotary, ...).
    """
    check_bert_shaped(encoder)
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": encoder.vocabulary_size,
        "hidden_size": encoder.hidden_dim,
        "num_hidden_layers": encoder.num_layers,
        "num_attention_heads": encoder.num_heads,
        "intermediate_size": uniform_block_shape(encoder, "BERT")["intermediate_dim"],
        "hidden_act": _EXPORT_ACTIVATIONS[encoder.activation],
        "hidden_dropout_prob": encoder.dropout,
        "attention_probs_dropout_prob": (
            encoder.dropout if encoder.attention_dropout is None else encoder.attention_dropout
        ),
        "max_position_embeddings": encoder.max_sequence_length,
        "type_vocab_size": encoder.num_segments,
        "initializer_range": encoder.kernel_initializer_range,
        "layer_norm_eps": encoder.layer_norm_epsilon,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }


# ---------------------------------------------------------------------------- weights
def _layer_norm(prefix: str, layer) -> list[TensorMapping]:
    return [
        TensorMapping(f"{prefix}.LayerNorm.weight", layer.gamma),
        TensorMapping(f"{prefix}.LayerNorm.bias", layer.beta),
    ]


def _dense(name: str, layer) -> list[TensorMapping]:
    return [
        TensorMapping(f"{name}.weight", layer.kernel, transpose=True),
        TensorMapping(f"{name}.bias", layer.bias),
    ]


def bert_tensor_mappings(encoder: Encoder) -> list[TensorMapping]:
    """Every tensor of a Hugging Face `BertModel` and the `Encoder` variable it fills, in the
    checkpoint's natural order (embeddings, layers, pooler).

    Example:
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> m = bert_tensor_mappings(encoder)[5]
    >>> m.hf_name, m.transpose
    ('encoder.layer.0.attention.self.query.weight', True)
    >>> m.variable.path
    'encoder_layer_0/self_attention/query/kernel'
    """
    check_bert_shaped(encoder)
    mappings = [
        TensorMapping("embeddings.word_embeddings.weight", encoder.token_embedding.embeddings),
        TensorMapping(
            "embeddings.token_type_embeddings.weight", encoder.segment_embedding.embeddings
        ),
        TensorMapping(
            "embeddings.position_embeddings.weight", encoder.position_layer.position_embeddings
        ),
        *_layer_norm("embeddings", encoder.embedding_layer_norm),
    ]
    for i, block in enumerate(encoder.blocks):
        prefix = f"encoder.layer.{i}"
        attention = block.self_attention
        mappings += [
            *_dense(f"{prefix}.attention.self.query", attention.query_dense),
            *_dense(f"{prefix}.attention.self.key", attention.key_dense),
            *_dense(f"{prefix}.attention.self.value", attention.value_dense),
            *_dense(f"{prefix}.attention.output.dense", attention.output_dense),
            *_layer_norm(f"{prefix}.attention.output", block.self_attention_norm),
            *_dense(f"{prefix}.intermediate.dense", block.feed_forward.inner_dense),
            *_dense(f"{prefix}.output.dense", block.feed_forward.output_dense),
            *_layer_norm(f"{prefix}.output", block.feed_forward_norm),
        ]
    if encoder.pooler_dense is not None:
        mappings += _dense("pooler.dense", encoder.pooler_dense)
    return mappings


def _canonical_name(name: str) -> str:
    for alias, canonical in _LAYER_NORM_ALIASES.items():
        if name.endswith(alias):
            return name[: -len(alias)] + canonical
    return name


def split_backbone_tensors(
    tensors: Mapping[str, np.ndarray],
) -> tuple[dict[str, tuple[str, np.ndarray]], list[str]]:
    """Separates a checkpoint's backbone tensors from task-head tensors and buffers.

    Task checkpoints (`BertForMaskedLM`, `BertForSequenceClassification`, ...) prefix the
    backbone with "bert."; their other tensors (`cls.*`, `classifier.*`) are heads.

    Returns:
        `({canonical BertModel name: (name in the checkpoint, tensor)}, [head tensor names])`.
        Canonical names drop the "bert." prefix and spell LayerNorm parameters weight/bias.
    """
    prefixed = any(name.startswith(BACKBONE_PREFIX) for name in tensors)
    backbone, heads = {}, []
    for name, tensor in tensors.items():
        if prefixed and not name.startswith(BACKBONE_PREFIX):
            heads.append(name)
            continue
        canonical = _canonical_name(name[len(BACKBONE_PREFIX) :] if prefixed else name)
        if canonical in BUFFERS:
            continue
        backbone[canonical] = (name, tensor)
    return backbone, heads


def load_bert_weights(encoder: Encoder, tensors: Mapping[str, np.ndarray]) -> list[str]:
    """Loads a Hugging Face BERT state dict into a BERT-shaped `Encoder`, all or nothing.

    Every `Encoder` weight must find its tensor, with its shape, and every backbone tensor of the
    checkpoint must find its weight; only then is anything assigned.

    Args:
        encoder: the target, built with the checkpoint's config (see `encoder_config_from_hf`).
        tensors: `{name: array}` as read by `read_tensors`: a `BertModel` state dict, or a task
            model's (backbone under "bert.", heads elsewhere).

    Returns:
        The names of task-head tensors that were not loaded (empty for a `BertModel`).

    Raises:
        CheckpointMismatchError: names the first missing, misshapen or unexpected tensor, with
            both names and shapes. The encoder is left unchanged.
    """
    mappings = bert_tensor_mappings(encoder)
    backbone, heads = split_backbone_tensors(tensors)
    assignments = []
    for mapping in mappings:
        ours = f"{mapping.variable.path} {tuple(mapping.variable.shape)}"
        if mapping.hf_name not in backbone:
            hint = ", ".join(repr(n) for n in list(tensors)[:3])
            raise CheckpointMismatchError(
                f"The checkpoint has no tensor {mapping.hf_name!r} for our weight {ours}. "
                f"Its first tensors are {hint}."
            )
        source_name, tensor = backbone.pop(mapping.hf_name)
        value = mapping.to_keras(np.asarray(tensor))
        if tuple(value.shape) != tuple(mapping.variable.shape):
            note = f" ({tuple(value.shape)} as an (in, out) kernel)" if mapping.transpose else ""
            raise CheckpointMismatchError(
                f"Shape mismatch: checkpoint tensor {source_name!r} has shape "
                f"{tuple(tensor.shape)}{note}, but our weight {mapping.variable.path} has shape "
                f"{tuple(mapping.variable.shape)}. Build the Encoder with the checkpoint's "
                "config.json (encoder_config_from_hf)."
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise CheckpointMismatchError(
                f"Checkpoint tensor {source_name!r} has dtype {value.dtype}; expected floats "
                f"for our weight {ours}."
            )
        assignments.append((mapping.variable, value))
    if backbone:
        source_name, tensor = next(iter(backbone.values()))
        raise CheckpointMismatchError(
            f"Checkpoint tensor {source_name!r} {tuple(tensor.shape)} has no counterpart in "
            f"this Encoder (num_layers={encoder.num_layers}, pooler={encoder.pooler}); "
            f"{len(backbone)} tensor(s) would be left unused."
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    if heads:
        logger.info("Ignored %d task-head tensors: %s", len(heads), ", ".join(heads))
    return heads


def bert_state_dict(encoder: Encoder) -> dict[str, np.ndarray]:
    """The `Encoder`'s weights as a Hugging Face `BertModel` state dict (float32 numpy).

    Example:
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> bert_state_dict(encoder)["encoder.layer.0.intermediate.dense.weight"].shape
    (16, 8)
    """
    return {
        m.hf_name: np.ascontiguousarray(m.to_hf(keras.ops.convert_to_numpy(m.variable))).astype(
            np.float32
        )
        for m in bert_tensor_mappings(encoder)
    }
