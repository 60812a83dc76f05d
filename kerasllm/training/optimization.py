"""Learning-rate schedules and the AdamW optimizer the `Trainer` builds from a `TrainerConfig`.

Gradient clipping and accumulation live in the Trainer's step, where the gradients of every
replica are summed once; the optimizer then applies them without reducing again.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from kerasllm import _compat
from kerasllm.layers import PositionEmbedding, RelativePositionBias, RMSNorm
from kerasllm.training.config import DECAYS, WEIGHT_DECAY_GROUPS, TrainerConfig

NORM_LAYERS = (
    keras.layers.LayerNormalization,
    keras.layers.BatchNormalization,
    keras.layers.GroupNormalization,
    RMSNorm,
)
EMBEDDING_LAYERS = (keras.layers.Embedding, PositionEmbedding, RelativePositionBias)


@keras.saving.register_keras_serializable(package="kerasllm")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `learning_rate`, then constant, linear, cosine or inverse-square-root
    decay.

    Args:
        learning_rate: peak learning rate, reached at step `warmup_steps`.
        total_steps: last step of linear and cosine decay (they reach `final_learning_rate`).
        warmup_steps: length of the linear warmup (0 for none).
        decay: "constant", "linear", "cosine" or "inverse_sqrt" (`lr * sqrt(warmup / step)`,
            as in "Attention is all you need").
        final_learning_rate: floor of linear and cosine decay.

    A trainer can move the end of linear and cosine decay while training: after
    `end_decay_at(variable)` the schedule reads its last step from `variable` at every call (the
    `Trainer` does this to end the decay when its time budget runs out).

    Example:
    >>> schedule = WarmupDecay(1e-3, total_steps=100, warmup_steps=10, decay="linear")
    >>> [round(float(schedule(s)), 5) for s in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
    """

    def __init__(
        self,
        learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        decay: str = "linear",
        final_learning_rate: float = 0.0,
    ):
        if decay not in DECAYS:
            raise ValueError(f"`decay` must be one of {list(DECAYS)}; got {decay!r}.")
        if decay == "inverse_sqrt" and warmup_steps <= 0:
            raise ValueError("decay='inverse_sqrt' needs warmup_steps > 0.")
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(
                f"Need total_steps >= 1 and warmup_steps >= 0; got {total_steps}, {warmup_steps}."
            )
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.final_learning_rate = float(final_learning_rate)
        self._decay_end = None

    def end_decay_at(self, variable) -> None:
        """Makes linear and cosine decay end at the step held by `variable` (a float scalar
        variable, read at every call) instead of `total_steps`.

        Example:
        >>> import keras
        >>> end = keras.Variable(100.0, trainable=False)
        >>> schedule = WarmupDecay(1e-3, total_steps=100, decay="linear")
        >>> schedule.end_decay_at(end)
        >>> _ = end.assign(50.0)  # e.g. a time budget allows only 50 steps
        >>> [round(float(schedule(s)), 5) for s in (0, 25, 50)]
        [0.001, 0.0005, 0.0]
        """
        self._decay_end = variable

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.learning_rate
        warmup = float(self.warmup_steps)
        if self.decay == "constant":
            decayed = ops.convert_to_tensor(peak, "float32")
        elif self.decay == "inverse_sqrt":
            decayed = peak * ops.sqrt(warmup / ops.maximum(step, warmup))
        else:
            if self._decay_end is None:
                span = max(float(self.total_steps - self.warmup_steps), 1.0)
            else:
                span = ops.maximum(ops.cast(self._decay_end, "float32") - warmup, 1.0)
            progress = ops.clip((step - warmup) / span, 0.0, 1.0)
            if self.decay == "linear":
                fraction = 1.0 - progress
            else:
                fraction = 0.5 * (1.0 + ops.cos(math.pi * progress))
            final = self.final_learning_rate
            decayed = final + (peak - final) * fraction
        if self.warmup_steps == 0:
            return decayed
        return ops.where(step < warmup, peak * step / warmup, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "final_learning_rate": self.final_learning_rate,
        }


@keras.saving.register_keras_serializable(package="kerasllm")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with per-variable learning-rate multipliers (for layer-wise
    learning-rate decay).

    Call `set_learning_rate_multipliers({variable_path: factor})` before the optimizer is built;
    variables not listed use factor 1. Weight decay stays decoupled and uses the base rate.

    Example:
    >>> import keras
    >>> layer = keras.layers.Dense(2, name="dense")
    >>> layer.build((None, 3))
    >>> optimizer = AdamW(learning_rate=0.1)
    >>> optimizer.set_learning_rate_multipliers({"dense/kernel": 0.5})
    >>> optimizer.build(layer.trainable_variables)
    >>> [optimizer.learning_rate_multiplier(v) for v in (layer.kernel, layer.bias)]
    [0.5, 1.0]
    """

    def set_learning_rate_multipliers(self, multipliers: dict[str, float]) -> None:
        if self.built:
            raise ValueError("Set learning-rate multipliers before the optimizer is built.")
        self._multipliers_by_path = {str(k): float(v) for k, v in multipliers.items()}

    def build(self, var_list):
        super().build(var_list)
        by_path = getattr(self, "_multipliers_by_path", {})
        unknown = set(by_path) - {v.path for v in var_list}
        if unknown:
            raise ValueError(
                f"Learning-rate multipliers name variables the optimizer does not train: "
                f"{sorted(unknown)[:5]}."
            )
        self._lr_multipliers = {
            self._var_key(v): by_path[v.path] for v in var_list if v.path in by_path
        }

    def learning_rate_multiplier(self, variable) -> float:
        """The factor applied to the learning rate of `variable` (1.0 unless set)."""
        return getattr(self, "_lr_multipliers", {}).get(self._var_key(variable), 1.0)

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self.learning_rate_multiplier(variable)
        if multiplier != 1.0:
            learning_rate = ops.multiply(learning_rate, ops.cast(multiplier, learning_rate.dtype))
        return super().update_step(gradient, variable, learning_rate)


def weight_decay_exclusions(model: keras.Model, groups=WEIGHT_DECAY_GROUPS) -> list:
    """The variables of `model` that belong to the named groups ("norm", "bias", "embedding").

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.layers.Dense(2), keras.layers.LayerNormalization()])
    >>> model.build((None, 3))
    >>> sorted(v.path.split("/")[-1] for v in weight_decay_exclusions(model, ("norm",)))
    ['beta', 'gamma']
    """
    unknown = set(groups) - set(WEIGHT_DECAY_GROUPS)
    if unknown:
        raise ValueError(
            f"Unknown weight-decay groups {sorted(unknown)}; allowed: {list(WEIGHT_DECAY_GROUPS)}."
        )
    excluded = {}
    for layer in _compat.nested_layers(model, include_self=True):
        if "norm" in groups and isinstance(layer, NORM_LAYERS):
            excluded.update((id(v), v) for v in layer.weights)
        if "embedding" in groups and isinstance(layer, EMBEDDING_LAYERS):
            excluded.update((id(v), v) for v in layer.weights)
    if "bias" in groups:
        for variable in model.weights:
            name = variable.path.split("/")[-1]
            if name == "bias" or name.endswith("_bias"):
                excluded[id(variable)] = variable
    return list(excluded.values())


def create_optimizer(
    config: TrainerConfig,
    model: keras.Model,
    learning_rate_multipliers: dict[str, float] | None = None,
    decay_end=None,
) -> keras.optimizers.Optimizer:
    """The optimizer a `TrainerConfig` describes, for `model`: AdamW on a `WarmupDecay` schedule,
    weight decay off for the excluded groups, wrapped in a `LossScaleOptimizer` under
    mixed_float16. Build it inside the strategy scope. `decay_end`: a variable holding the step
    where linear or cosine decay ends (see `WarmupDecay.end_decay_at`); None: `config.steps`.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> model.build((None, 3))
    >>> optimizer = create_optimizer(TrainerConfig("/tmp/run", steps=10), model)
    >>> type(optimizer).__name__, round(float(optimizer.learning_rate), 6)  # step 0 of the decay
    ('AdamW', 0.001)
    """
    schedule = WarmupDecay(
        config.learning_rate,
        total_steps=config.steps,
        warmup_steps=config.warmup_steps,
        decay=config.decay,
        final_learning_rate=config.final_learning_rate,
    )
    if decay_end is not None:
        schedule.end_decay_at(decay_end)
    optimizer = AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
    )
    optimizer.exclude_from_weight_decay(
        var_list=weight_decay_exclusions(model, config.weight_decay_exclude)
    )
    if learning_rate_multipliers:
        optimizer.set_learning_rate_multipliers(learning_rate_multipliers)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def skip_gradient_all_reduce(optimizer: keras.optimizers.Optimizer) -> None:
    """Makes `optimizer.apply` use the gradients as given, without summing them over replicas.

    Keras' TensorFlow optimizers all-reduce gradients inside `apply`, after any clipping they do;
    the Trainer instead sums the gradients once itself, so that global-norm clipping, the loss
    scaler's finiteness check and gradient accumulation all see the global gradient, and every
    replica then applies the same update.
    """
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if opt is not None:
            _compat.skip_replica_all_reduce(opt)


def loss_scale(optimizer: keras.optimizers.Optimizer):
    """The current loss scale (1.0 without a `LossScaleOptimizer`)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return ops.cast(optimizer.dynamic_scale, "float32")
    return ops.convert_to_tensor(1.0, "float32")
