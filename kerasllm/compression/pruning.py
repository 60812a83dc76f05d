"""Pruning of kerasllm task models: unstructured magnitude pruning during fine-tuning, and
structured pruning of attention heads and feed-forward units into a smaller dense model.

Unstructured (`MagnitudePruning`, `PolynomialDecay`, `strip`): the TF Model Optimization
Toolkit's `prune_low_magnitude` and `PolynomialDecay` only wrap Keras 2 (`tf.keras`) layers, so
they cannot reach Keras 3 models; this module rebuilds the same method for the project's
`Trainer`. Each pruned kernel gets a 0/1 mask (a variable outside the model). Every
`frequency` steps from `begin_step` to `end_step` the masks are recomputed so that each kernel
keeps its largest-magnitude weights at the schedule's sparsity; the mask is a Keras variable
constraint on the kernel, which Keras optimizers apply right after every update, so pruned
weights stay exactly zero under any `tf.distribute` strategy. `strip` removes the constraints:
the model is then a plain float model with zeros in it (no mask variables ever enter it), that
saves, loads and exports like any other.

Structured (`prune_structured`): scores every attention head and feed-forward unit, removes
the lowest-scoring fraction of each layer and rebuilds a genuinely smaller model (the backbone's
`layer_shapes` config gives each block its own head count and feed-forward width), with the
kept weights copied, ready for recovery fine-tuning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasllm import _compat
from kerasllm.layers import FeedForward, MultiHeadAttention, TokenEmbedding
from kerasllm.models.task import Task
from kerasllm.training.controller import Action, LoopState

IMPORTANCE_METHODS = ("magnitude", "taylor")


# ------------------------------------------------------------------ unstructured
@dataclasses.dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity schedule of TF-MOT's `PolynomialDecay` (Zhu & Gupta, 2017), rebuilt for Keras 3.

    The sparsity rises from `initial_sparsity` at `begin_step` to `final_sparsity` at
    `end_step` as `final + (initial - final) * (1 - progress) ** power`, and stays there.
    Masks are updated at `begin_step`, then every `frequency` steps up to `end_step`
    (`step` counts optimizer updates done before the update about to run).

    Example:
    >>> schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, frequency=10)
    >>> schedule.sparsity(0), schedule.sparsity(100), round(schedule.sparsity(50), 4)
    (0.0, 0.5, 0.4375)
    >>> schedule.should_update(20), schedule.should_update(25), schedule.next_update(21)
    (True, False, 30)
    """

    initial_sparsity: float = 0.0
    final_sparsity: float = 0.5
    begin_step: int = 0
    end_step: int = 1000
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        for name in ("initial_sparsity", "final_sparsity"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1); got {value!r}.")
        for name in ("begin_step", "end_step", "frequency"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0; got {value!r}.")
        if self.frequency < 1:
            raise ValueError(f"`frequency` must be >= 1; got {self.frequency}.")
        if self.end_step < self.begin_step:
            raise ValueError(
                f"`end_step` ({self.end_step}) must be >= `begin_step` ({self.begin_step})."
            )
        if not self.power > 0:
            raise ValueError(f"`power` must be > 0; got {self.power!r}.")

    def sparsity(self, step: int) -> float:
        """The target sparsity at `step` (`initial_sparsity` before `begin_step`)."""
        if self.end_step == self.begin_step:
            progress = 1.0 if step >= self.end_step else 0.0
        else:
            progress = min(
                1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step))
            )
        span = self.initial_sparsity - self.final_sparsity
        return float(self.final_sparsity + span * (1.0 - progress) ** self.power)

    def should_update(self, step: int) -> bool:
        """Whether the masks are recomputed before the update at `step`."""
        return (
            self.begin_step <= step <= self.end_step
            and (step - self.begin_step) % self.frequency == 0
        )

    def last_update(self, step: int) -> int | None:
        """The last mask update at or before `step` (None before `begin_step`)."""
        if step < self.begin_step:
            return None
        step = min(step, self.end_step)
        return step - (step - self.begin_step) % self.frequency

    def next_update(self, step: int) -> int | None:
        """The first mask update after `step`, or None when there is none left."""
        if step < self.begin_step:
            return self.begin_step
        following = step + self.frequency - (step - self.begin_step) % self.frequency
        return following if following <= self.end_step else None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def prunable_weights(model: keras.Model, include_embeddings: bool = False) -> list:
    """The kernels unstructured pruning reaches: every projection (`Dense` kernel) of the
    attention layers (query, key, value, output) and feed-forward layers; with
    `include_embeddings`, also the token embedding table (the output projection when tied)
    and an untied output projection. Biases, norms and task heads are left dense.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> len(prunable_weights(model)), len(prunable_weights(model, include_embeddings=True))
    (6, 7)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    weights, seen = [], set()
    for layer in _compat.nested_layers(model):
        if layer.quantization_mode is not None:
            raise ValueError(
                f"Layer {layer.path!r} is quantized ({layer.quantization_mode}); prune the float "
                "model, then quantize it."
            )
        kernels = []
        if isinstance(layer, MultiHeadAttention):
            kernels = [
                d.kernel
                for d in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)
            ]
        elif isinstance(layer, FeedForward):
            dense = [layer.inner_dense, layer.output_dense]
            if layer.gated:
                dense.insert(1, layer.gate_dense)
            kernels = [d.kernel for d in dense]
        elif include_embeddings and isinstance(layer, TokenEmbedding):
            kernels = [layer.embeddings]
            if not layer.tie_weights:
                kernels.append(layer.reverse_embeddings)
        for kernel in kernels:
            if id(kernel) not in seen:
                seen.add(id(kernel))
                weights.append(kernel)
    return weights


def magnitude_mask(values: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask of `values`' shape zeroing its `round(sparsity * size)` smallest magnitudes
    (exactly that many: ties are broken by position).

    Example:
    >>> magnitude_mask(np.array([[0.1, -3.0], [2.0, -0.5]]), 0.5).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    flat = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    pruned = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=np.float32)
    if pruned:
        mask[np.argsort(flat, kind="stable")[:pruned]] = 0.0
    return mask.reshape(np.shape(values))


class _MaskConstraint:
    """A variable constraint multiplying the kernel by its mask (Keras optimizers apply it
    after every update, in the replica step)."""

    def __init__(self, mask: tf.Variable):
        self.mask = mask

    def __call__(self, weight):
        return weight * tf.cast(self.mask, weight.dtype)


class MagnitudePruning(Action):
    """Unstructured magnitude pruning during training with the project's `Trainer`.

    Pass it to `Trainer.fit(..., callbacks=[pruning])` (the trainer runs it between its
    training-loop calls, which end at every mask update). Before the update at each scheduled
    step it recomputes each kernel's mask, keeping its largest-magnitude weights at
    `schedule.sparsity(step)`, and zeroes the pruned ones; between updates, the mask is the
    kernel's variable constraint, so the optimizer keeps pruned weights at zero (Adam's moments
    cannot bring them back). Each kernel is pruned to the target sparsity on its own, as TF-MOT
    does. A resumed run recomputes the masks at the schedule's last update before its step.
    After training, `strip(model)` leaves plain weights.

    Args:
        model: the task model being trained (the trainer's `model`).
        schedule: a `PolynomialDecay`.
        include_embeddings: prune the token embedding (and untied output projection) too.
        strategy: the trainer's `tf.distribute` strategy (`trainer.strategy`), so the masks
            are mirrored like the weights; None for the current (default) strategy.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> pruning = MagnitudePruning(model, PolynomialDecay(0.0, 0.5, 0, 0, frequency=1))
    >>> pruning.update_masks(0)
    0.5
    >>> round(sparsity(model)["sparsity"], 3), len(strip(model).weights) == len(model.weights)
    (0.5, True)
    """

    def __init__(
        self,
        model: keras.Model,
        schedule: PolynomialDecay,
        include_embeddings: bool = False,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if not isinstance(schedule, PolynomialDecay):
            raise TypeError(f"`schedule` must be a PolynomialDecay; got {type(schedule).__name__}.")
        self.model = model
        self.schedule = schedule
        self.include_embeddings = include_embeddings
        self.weights = prunable_weights(model, include_embeddings)
        if not self.weights:
            raise ValueError(f"{type(model).__name__} has no attention or feed-forward kernel.")
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            self.masks = [
                tf.Variable(
                    tf.ones(tuple(w.shape), tf.float32),
                    trainable=False,
                    name="pruning_mask",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                for w in self.weights
            ]
        for weight, mask in zip(self.weights, self.masks):
            if weight.constraint is not None and not isinstance(weight.constraint, _MaskConstraint):
                raise ValueError(f"{weight.path} already has a constraint; cannot prune it.")
            weight.constraint = _MaskConstraint(mask)
        self.current_sparsity = 0.0

    def update_masks(self, step: int) -> float:
        """Recomputes every mask at `schedule.sparsity(step)` and applies it; returns it."""
        target = self.schedule.sparsity(step)
        for weight, mask in zip(self.weights, self.masks):
            values = keras.ops.convert_to_numpy(weight.value)
            new_mask = magnitude_mask(values, target)
            mask.assign(new_mask)
            weight.assign((values * new_mask).astype(values.dtype))
        self.current_sparsity = target
        return target

    # The trainer's Action hooks.
    def on_begin(self, state: LoopState) -> None:
        last = self.schedule.last_update(state.step)
        if last is not None and not self.schedule.should_update(state.step):
            self.update_masks(last)  # a resumed run: the masks in force at its step

    def before_loop(self, state: LoopState) -> None:
        if self.schedule.should_update(state.step):
            self.update_masks(state.step)

    def next_boundary(self, step: int) -> int | None:
        return self.schedule.next_update(step)


def strip(model: keras.Model) -> keras.Model:
    """Removes the pruning masks' constraints from `model`'s kernels (applying each mask once
    more), leaving plain float weights with zeros in them; returns `model`."""
    for weight in model.weights:
        constraint = getattr(weight, "constraint", None)
        if isinstance(constraint, _MaskConstraint):
            weight.assign(constraint(weight.value))
            weight.constraint = None
    return model


def sparsity(model: keras.Model, include_embeddings: bool = False) -> dict[str, Any]:
    """Zeros among the prunable kernels (`prunable_weights`): `{"sparsity", "zeros",
    "values", "per_weight": {path: fraction}}`."""
    per_weight, zeros, total = {}, 0, 0
    for weight in prunable_weights(model, include_embeddings):
        values = keras.ops.convert_to_numpy(weight.value)
        count = int(np.count_nonzero(values == 0))
        per_weight[weight.path] = count / values.size
        zeros += count
        total += values.size
    return {
        "sparsity": zeros / total if total else 0.0,
        "zeros": zeros,
        "values": total,
        "per_weight": per_weight,
    }


# -------------------------------------------------------------------- structured
def _attention_layers(block) -> list[tuple[str, MultiHeadAttention]]:
    layers = [("self_attention", block.self_attention)]
    if getattr(block, "cross_attention", False):
        layers.append(("cross_attention", block.cross_attention_layer))
    return layers


def _head_slices(attention: MultiHeadAttention, values: np.ndarray, axis: int) -> np.ndarray:
    """`values` split per query head along `axis`: (num_heads, ...)."""
    heads, width = attention.num_heads, attention.head_dim
    moved = np.moveaxis(values, axis, 0)
    return moved.reshape(heads, width, *moved.shape[1:])


def _magnitude_scores(block) -> dict[str, np.ndarray]:
    scores = {}
    for name, attention in _attention_layers(block):
        query = _head_slices(attention, _numpy(attention.query_dense.kernel), axis=1)
        output = _head_slices(attention, _numpy(attention.output_dense.kernel), axis=0)
        scores[name] = np.sqrt((query**2).reshape(attention.num_heads, -1).sum(1)) * np.sqrt(
            (output**2).reshape(attention.num_heads, -1).sum(1)
        )
    feed_forward = block.feed_forward
    inner = (_numpy(feed_forward.inner_dense.kernel) ** 2).sum(0)
    if feed_forward.gated:
        inner = inner + (_numpy(feed_forward.gate_dense.kernel) ** 2).sum(0)
    output = (_numpy(feed_forward.output_dense.kernel) ** 2).sum(1)
    scores["feed_forward"] = np.sqrt(inner) * np.sqrt(output)
    return scores


def _numpy(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)


def importance(
    model: Task,
    method: str = "magnitude",
    data: Iterable | None = None,
    objective: Any = None,
    batches: int = 8,
) -> list[dict[str, np.ndarray]]:
    """Importance of every attention head and feed-forward unit, one dict per block (in
    `backbone.layer_blocks` order): `{"self_attention": (heads,), "cross_attention": (heads,)
    (decoder blocks that have it), "feed_forward": (units,)}`; higher is more important.

    Methods:
        "magnitude": a head scores the L2 norm of its query-projection columns times that of
            its output-projection rows; a unit the norm of its input column(s) (with the gate's
            when gated) times that of its output row. Needs no data.
        "taylor": first-order Taylor importance (Molchanov et al., 2017; Michel et al., 2019,
            "Are sixteen heads really better than one?"): the absolute change of the loss when a
            head's (unit's) output is removed, estimated as |sum of W * dL/dW| over the rows
            of the output projection that read it (exactly the gradient of a gate on it), summed
            over `batches` batches of `data` (`(x, y, sample_weight)` as `kerasllm.data`
            yields) under `objective` (a `kerasllm.training.objectives` name or object).

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> [tuple(s.shape) for s in importance(model)[0].values()]
    [(2,), (512,)]
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"`method` must be one of {list(IMPORTANCE_METHODS)}; got {method!r}.")
    blocks = _backbone(model).layer_blocks
    if method == "magnitude":
        return [_magnitude_scores(block) for block in blocks]
    if data is None or objective is None:
        raise ValueError('`method="taylor"` needs `data` and `objective`.')
    if not isinstance(batches, int) or batches < 1:
        raise ValueError(f"`batches` must be a positive integer; got {batches!r}.")
    from kerasllm.training import objectives

    objective = objectives.get(objective)
    targets = []
    for block in blocks:
        for name, attention in _attention_layers(block):
            targets.append((block, name, attention, attention.output_dense.kernel))
        targets.append(
            (block, "feed_forward", block.feed_forward, block.feed_forward.output_dense.kernel)
        )
    variables = [t[3] for t in targets]
    totals = [None] * len(targets)
    used = 0
    for batch in data:
        if used >= batches:
            break
        x, y, weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as tape:
            outputs = model(x, training=False)
            sums = objective.loss_sums(y, outputs, weight)
            norms = objective.normalizers(y, weight)
            loss = tf.add_n([tf.math.divide_no_nan(s, n) for s, n in zip(sums, norms)])
        gradients = tape.gradient(loss, [v.value for v in variables])
        for index, ((_, _, layer, kernel), gradient) in enumerate(zip(targets, gradients)):
            product = _numpy(kernel) * np.asarray(gradient, dtype=np.float64)
            if isinstance(layer, MultiHeadAttention):
                score = np.abs(_head_slices(layer, product, 0).reshape(layer.num_heads, -1).sum(1))
            else:
                score = np.abs(product.sum(1))
            totals[index] = score if totals[index] is None else totals[index] + score
        used += 1
    if not used:
        raise ValueError("`data` yielded no batch.")
    results: list[dict[str, np.ndarray]] = [{} for _ in blocks]
    position = {id(block): i for i, block in enumerate(blocks)}
    for (block, name, _, _), total in zip(targets, totals):
        results[position[id(block)]][name] = total / used
    return results


def _backbone(model):
    if not isinstance(model, Task):
        raise TypeError(f"`model` must be a kerasllm task model; got {type(model).__name__}.")
    return model.backbone


def _keep_heads(attention: MultiHeadAttention, scores: np.ndarray, fraction: float) -> list[int]:
    """Query heads kept (sorted). Without grouped-query attention a head goes with its key and
    value; with it, every key/value group loses the same number of its lowest query heads."""
    kv_heads = attention.num_key_value_heads
    group = attention.num_heads // kv_heads
    if group == 1:
        remove = min(int(round(fraction * attention.num_heads)), attention.num_heads - 1)
        order = np.argsort(scores, kind="stable")
        return sorted(int(h) for h in order[remove:])
    remove = min(int(round(fraction * group)), group - 1)
    kept = []
    for g in range(kv_heads):
        members = np.arange(g * group, (g + 1) * group)
        order = members[np.argsort(scores[members], kind="stable")]
        kept += [int(h) for h in order[remove:]]
    return sorted(kept)


def _keep_units(scores: np.ndarray, fraction: float) -> list[int]:
    remove = min(int(round(fraction * scores.size)), scores.size - 1)
    return sorted(int(u) for u in np.argsort(scores, kind="stable")[remove:])


def plan(
    model: Task,
    heads_fraction: float = 0.25,
    ffn_fraction: float = 0.25,
    scores: list[dict[str, np.ndarray]] | None = None,
) -> list[dict[str, list[int]]]:
    """What `prune_structured` keeps: per block, the sorted indices of the query heads of each
    attention layer and of the feed-forward units (`scores` from `importance`; magnitude by
    default). Each layer loses `round(fraction * count)` (at least one head or unit stays)."""
    for name, value in (("heads_fraction", heads_fraction), ("ffn_fraction", ffn_fraction)):
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1); got {value!r}.")
    blocks = _backbone(model).layer_blocks
    scores = importance(model) if scores is None else scores
    if len(scores) != len(blocks):
        raise ValueError(f"`scores` has {len(scores)} entries; the model has {len(blocks)} blocks.")
    kept = []
    for block, block_scores in zip(blocks, scores):
        entry = {}
        for name, attention in _attention_layers(block):
            entry[name] = _keep_heads(attention, np.asarray(block_scores[name]), heads_fraction)
        entry["feed_forward"] = _keep_units(np.asarray(block_scores["feed_forward"]), ffn_fraction)
        kept.append(entry)
    return kept


def _kv_of(attention: MultiHeadAttention, heads: list[int]) -> list[int]:
    group = attention.num_heads // attention.num_key_value_heads
    if group == 1:
        return list(heads)
    return sorted({h // group for h in heads})


def _columns(heads: list[int], width: int) -> np.ndarray:
    return np.concatenate([np.arange(h * width, (h + 1) * width) for h in heads])


def prune_structured(
    model: Task,
    heads_fraction: float = 0.25,
    ffn_fraction: float = 0.25,
    scores: list[dict[str, np.ndarray]] | None = None,
    keep: list[dict[str, list[int]]] | None = None,
) -> Task:
    """A new, smaller task model without the least important heads and feed-forward units.

    The backbone's config gets `layer_shapes` (each block's heads and feed-forward width; head
    width unchanged), so the result saves, loads and exports like any model; the kept weights
    are copied, everything else (embeddings, tied output projection, norms, head) is the same.
    The pruned model computes exactly what the original computes with the removed heads'
    output-projection rows and units' output rows set to zero. With grouped-query attention,
    key/value heads are kept and each group loses the same number of query heads. Models with
    relative position bias (T5) can only lose feed-forward units (`heads_fraction=0`).

    Args:
        model: a float kerasllm task model (unchanged).
        heads_fraction: fraction of each attention layer's query heads removed.
        ffn_fraction: fraction of each feed-forward layer's units removed.
        scores: `importance(...)` results (default: "magnitude").
        keep: an explicit `plan(...)` (overrides the fractions and scores).

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> smaller = prune_structured(model, heads_fraction=0.5, ffn_fraction=0.5)
    >>> smaller.backbone.layer_shapes, smaller.count_params() < model.count_params()
    ([{'num_heads': 1, 'num_key_value_heads': 1, 'intermediate_dim': 256}], True)
    """
    backbone = _backbone(model)
    if any(layer.quantization_mode for layer in _compat.nested_layers(model)):
        raise ValueError("The model is quantized; prune its float original instead.")
    if keep is None:
        keep = plan(model, heads_fraction, ffn_fraction, scores)
    blocks = backbone.layer_blocks
    if len(keep) != len(blocks):
        raise ValueError(f"`keep` has {len(keep)} entries; the model has {len(blocks)} blocks.")
    if backbone.position_embedding == "relative" and any(
        len(k["self_attention"]) != block.self_attention.num_heads for k, block in zip(keep, blocks)
    ):
        raise ValueError(
            "Models with relative position bias share one bias table across layers by head "
            "index: prune their feed-forward units only (heads_fraction=0)."
        )
    shapes = []
    for entry, block in zip(keep, blocks):
        attention = block.self_attention
        shape = {
            "num_heads": len(entry["self_attention"]),
            "num_key_value_heads": len(_kv_of(attention, entry["self_attention"])),
            "intermediate_dim": len(entry["feed_forward"]),
        }
        if "cross_attention" in entry:
            cross = block.cross_attention_layer
            shape["cross_attention_heads"] = len(entry["cross_attention"])
            shape["cross_attention_key_value_heads"] = len(_kv_of(cross, entry["cross_attention"]))
        shapes.append(shape)
    config = model.get_config()
    config["preprocessor"] = None  # attached again below (it holds no weights)
    backbone_config = dict(config["backbone"]["config"])
    backbone_config["layer_shapes"] = shapes
    config["backbone"] = {**config["backbone"], "config": backbone_config}
    smaller = type(model).from_config(config)
    _copy_weights(model, smaller, keep)
    if model.preprocessor is not None:
        smaller.preprocessor = model.preprocessor
    return smaller


def _copy_weights(source: Task, target: Task, keep) -> None:
    sliced: dict[int, np.ndarray] = {}
    for entry, old, new in zip(keep, source.backbone.layer_blocks, target.backbone.layer_blocks):
        for name, attention in _attention_layers(old):
            new_attention = dict(_attention_layers(new))[name]
            heads = entry[name]
            kv = _kv_of(attention, heads)
            q_cols = _columns(heads, attention.head_dim)
            kv_cols = _columns(kv, attention.head_dim)
            for dense, new_dense, columns in (
                (attention.query_dense, new_attention.query_dense, q_cols),
                (attention.key_dense, new_attention.key_dense, kv_cols),
                (attention.value_dense, new_attention.value_dense, kv_cols),
            ):
                sliced[id(new_dense.kernel)] = _numpy(dense.kernel)[:, columns]
                if dense.use_bias:
                    sliced[id(new_dense.bias)] = _numpy(dense.bias)[columns]
            sliced[id(new_attention.output_dense.kernel)] = _numpy(attention.output_dense.kernel)[
                q_cols
            ]
        units = np.asarray(entry["feed_forward"])
        old_ff, new_ff = old.feed_forward, new.feed_forward
        pairs = [(old_ff.inner_dense, new_ff.inner_dense)]
        if old_ff.gated:
            pairs.append((old_ff.gate_dense, new_ff.gate_dense))
        for dense, new_dense in pairs:
            sliced[id(new_dense.kernel)] = _numpy(dense.kernel)[:, units]
            if dense.use_bias:
                sliced[id(new_dense.bias)] = _numpy(dense.bias)[units]
        sliced[id(new_ff.output_dense.kernel)] = _numpy(old_ff.output_dense.kernel)[units]
    old_weights = {w.path: w for w in source.weights}
    for weight in target.weights:
        if id(weight) in sliced:
            values = sliced[id(weight)]
        else:
            if weight.path not in old_weights:
                raise ValueError(f"No weight {weight.path!r} in the original model.")
            values = _numpy(old_weights[weight.path])
        if tuple(values.shape) != tuple(weight.shape):
            raise ValueError(
                f"{weight.path}: shape {tuple(values.shape)} does not fit {tuple(weight.shape)}."
            )
        weight.assign(values.astype(weight.dtype))


def zero_removed(model: Task, keep: list[dict[str, list[int]]]) -> Task:
    """Zeroes, in place, the output-projection rows of the heads and units `keep` leaves out:
    the original model then computes what `prune_structured(model, keep=keep)` does (used to
    check head slicing). Returns `model`."""
    for entry, block in zip(keep, _backbone(model).layer_blocks):
        for name, attention in _attention_layers(block):
            removed = sorted(set(range(attention.num_heads)) - set(entry[name]))
            if removed:
                kernel = _numpy(attention.output_dense.kernel)
                kernel[_columns(removed, attention.head_dim)] = 0.0
                attention.output_dense.kernel.assign(kernel.astype("float32"))
        feed_forward = block.feed_forward
        removed = sorted(set(range(feed_forward.intermediate_dim)) - set(entry["feed_forward"]))
        if removed:
            kernel = _numpy(feed_forward.output_dense.kernel)
            kernel[removed] = 0.0
            feed_forward.output_dense.kernel.assign(kernel.astype("float32"))
    return model


def describe_magnitude(schedule: PolynomialDecay, measured: dict, include_embeddings: bool) -> dict:
    """The record a pruned bundle's metadata keeps under "compression"."""
    return {
        "method": "pruning",
        "mode": "magnitude",
        "scheme": (
            f"unstructured magnitude pruning to {schedule.final_sparsity:.0%} of each attention "
            "and feed-forward kernel"
            + (" and the token embedding" if include_embeddings else "")
            + f" (polynomial schedule, power {schedule.power:g}, steps {schedule.begin_step}-"
            f"{schedule.end_step} every {schedule.frequency}), then stripped to plain weights"
        ),
        "schedule": schedule.as_dict(),
        "measured_sparsity": round(measured["sparsity"], 4),
        "include_embeddings": include_embeddings,
        "keras_version": keras.__version__,
    }


def describe_structured(
    original: Task, pruned: Task, method: str, heads_fraction: float, ffn_fraction: float
) -> dict:
    """The record a structurally pruned bundle's metadata keeps under "compression"."""
    heads_before = sum(
        a.num_heads for b in original.backbone.layer_blocks for _, a in _attention_layers(b)
    )
    heads_after = sum(
        a.num_heads for b in pruned.backbone.layer_blocks for _, a in _attention_layers(b)
    )
    units_before = sum(b.feed_forward.intermediate_dim for b in original.backbone.layer_blocks)
    units_after = sum(b.feed_forward.intermediate_dim for b in pruned.backbone.layer_blocks)
    return {
        "method": "pruning",
        "mode": "structured",
        "scheme": (
            f"structured pruning ({method} importance): {heads_before - heads_after} of "
            f"{heads_before} attention heads and {units_before - units_after} of {units_before} "
            "feed-forward units removed; a smaller dense model"
        ),
        "importance": method,
        "heads_fraction": heads_fraction,
        "ffn_fraction": ffn_fraction,
        "heads": [heads_before, heads_after],
        "feed_forward_units": [units_before, units_after],
        "parameters": [int(original.count_params()), int(pruned.count_params())],
        "keras_version": keras.__version__,
    }
