"""Fine-tuning controls: freezing, layer-wise learning-rate decay and LoRA adapters.

Each weight of a model gets a *depth*: 0 for the embeddings (token, position, segment, relative
position bias and the embedding norm), `i + 1` for transformer block `i` (`backbone.layer_blocks`:
encoder blocks then decoder blocks for seq2seq), and `num_blocks + 1` for everything above the
blocks (final norm, pooler, task head).
"""

from __future__ import annotations

import keras

from kerasllm import _compat
from kerasllm.layers import MultiHeadAttention
from kerasllm.models import Backbone
from kerasllm.training.config import TrainerConfig

_TOP_OF_BACKBONE = ("final_norm", "pooler")


def backbone_of(model: keras.Model) -> Backbone:
    """The kerasllm backbone of a task model (or the model itself when it is a backbone)."""
    if isinstance(model, Backbone):
        return model
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise ValueError(
            f"Fine-tuning controls need a kerasllm task model or backbone; got "
            f"{type(model).__name__} without a kerasllm `backbone`."
        )
    return backbone


def weight_depths(model: keras.Model) -> dict[int, int]:
    """Maps `id(variable)` to its depth (see the module docstring) for every weight of `model`."""
    backbone = backbone_of(model)
    blocks = backbone.layer_blocks
    top = len(blocks) + 1
    depths = {id(v): top for v in model.weights}
    for variable in backbone.weights:
        top_layer = any(part in variable.path for part in _TOP_OF_BACKBONE)
        depths[id(variable)] = top if top_layer else 0
    for index, block in enumerate(blocks):
        for variable in block.weights:
            depths[id(variable)] = index + 1
    return depths


def freeze_backbone(model: keras.Model) -> None:
    """Makes every backbone weight non-trainable; the task head stays trainable."""
    backbone_of(model).trainable = False


def freeze_lower_layers(model: keras.Model, num_layers: int) -> int:
    """Freezes the embeddings and the lowest `num_layers` transformer blocks.

    Returns:
        The number of weights frozen.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, weights=None)
    >>> before = len(model.trainable_weights)
    >>> frozen = freeze_lower_layers(model, 1)
    >>> len(model.trainable_weights) == before - frozen
    True
    """
    blocks = backbone_of(model).layer_blocks
    if not 0 <= num_layers <= len(blocks):
        raise ValueError(
            f"`freeze_layers` must be in [0, {len(blocks)}] for this model; got {num_layers}."
        )
    depths = weight_depths(model)
    frozen = 0
    for variable in model.weights:
        if depths[id(variable)] <= num_layers and variable.trainable:
            variable.trainable = False
            frozen += 1
    return frozen


def layerwise_lr_multipliers(model: keras.Model, decay: float) -> dict:
    """Learning-rate factors `decay ** (top - depth)`: 1 for the head, `decay` for the top block,
    down to `decay ** (num_blocks + 1)` for the embeddings (ELECTRA / BEiT layer-wise decay).

    Returns:
        `{variable_path: factor}` for the trainable weights, for
        `AdamW.set_learning_rate_multipliers`.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, weights=None)
    >>> factors = layerwise_lr_multipliers(model, 0.5)
    >>> factors["classifier/kernel"], factors["encoder_layer_1/self_attention/query/kernel"]
    (1.0, 0.5)
    >>> factors["token_embedding/embeddings"]
    0.125
    """
    if not 0 < decay <= 1:
        raise ValueError(f"Layer-wise learning-rate decay must be in (0, 1]; got {decay!r}.")
    depths = weight_depths(model)
    top = len(backbone_of(model).layer_blocks) + 1
    return {v.path: decay ** (top - depths[id(v)]) for v in model.trainable_weights}


def apply_lora(
    model: keras.Model,
    rank: int,
    alpha: float | None = None,
    targets: tuple[str, ...] = ("query", "value"),
) -> int:
    """Adds LoRA adapters (`keras.layers.Dense.enable_lora`) to the attention projections named by
    `targets` and freezes the rest of the backbone: only the adapters and the task head train.

    Args:
        model: a kerasllm task model or backbone (built).
        rank: adapter rank.
        alpha: scaling numerator (updates are scaled by `alpha / rank`); defaults to `rank`.
        targets: projections of `kerasllm.layers.MultiHeadAttention` to adapt, among "query",
            "key", "value" and "attention_output".

    Returns:
        The number of projections adapted.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, weights=None)
    >>> apply_lora(model, rank=4)
    4
    """
    allowed = ("query", "key", "value", "attention_output")
    unknown = set(targets) - set(allowed)
    if unknown:
        raise ValueError(f"Unknown LoRA targets {sorted(unknown)}; allowed: {list(allowed)}.")
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA `rank` must be a positive integer; got {rank!r}.")
    backbone = backbone_of(model)
    for layer in _compat.nested_layers(backbone):
        layer.trainable = False
    attributes = {
        "query": "query_dense",
        "key": "key_dense",
        "value": "value_dense",
        "attention_output": "output_dense",
    }
    adapted = 0
    for layer in _compat.nested_layers(backbone):
        if not isinstance(layer, MultiHeadAttention):
            continue
        for target in targets:
            dense = getattr(layer, attributes[target])
            dense.trainable = True
            dense.enable_lora(rank, lora_alpha=alpha if alpha is not None else rank)
            if dense.bias is not None:
                dense.bias.trainable = False
            adapted += 1
    if not adapted:
        raise ValueError("The backbone has no kerasllm MultiHeadAttention layer to adapt.")
    return adapted


def apply_finetuning(model: keras.Model, config: TrainerConfig) -> dict | None:
    """Applies the freezing and LoRA settings of `config` to `model` (inside the strategy scope).

    Returns:
        Layer-wise learning-rate multipliers when `config.layerwise_lr_decay` is set, else None.
    """
    if config.freeze_backbone:
        freeze_backbone(model)
    if config.freeze_layers:
        freeze_lower_layers(model, config.freeze_layers)
    if config.lora_rank is not None:
        apply_lora(model, config.lora_rank, config.lora_alpha)
    if config.layerwise_lr_decay is not None and config.layerwise_lr_decay != 1.0:
        return layerwise_lr_multipliers(model, config.layerwise_lr_decay)
    return None
