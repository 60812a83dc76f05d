"""Schedules, AdamW with exclusions and learning-rate multipliers, and config validation."""

import keras
import numpy as np
import pytest

from kerasllm import zoo
from kerasllm.testing import TINY
from kerasllm.training import AdamW, TrainerConfig, WarmupDecay, create_optimizer
from kerasllm.training.optimization import weight_decay_exclusions


def values(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_schedules():
    linear = WarmupDecay(
        1.0, total_steps=110, warmup_steps=10, decay="linear", final_learning_rate=0.1
    )
    assert values(linear, [0, 5, 10, 60, 110, 200]) == pytest.approx([0, 0.5, 1, 0.55, 0.1, 0.1])
    cosine = WarmupDecay(1.0, total_steps=100, decay="cosine")
    assert values(cosine, [0, 50, 100]) == pytest.approx([1, 0.5, 0], abs=1e-6)
    inverse = WarmupDecay(2.0, total_steps=1000, warmup_steps=4, decay="inverse_sqrt")
    assert values(inverse, [2, 4, 16, 64]) == pytest.approx([1, 2, 1, 0.5])
    constant = WarmupDecay(3.0, total_steps=10, warmup_steps=2, decay="constant")
    assert values(constant, [1, 2, 50]) == pytest.approx([1.5, 3, 3])


def test_schedule_serializes():
    schedule = WarmupDecay(1e-3, total_steps=100, warmup_steps=10, decay="cosine")
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, WarmupDecay)
    assert values(restored, [5, 40]) == pytest.approx(values(schedule, [5, 40]))
    with pytest.raises(ValueError, match="decay"):
        WarmupDecay(1e-3, total_steps=10, decay="exponential")


def test_weight_decay_exclusions_cover_norms_biases_and_embeddings():
    model = zoo.get("bert_tiny", task="masked_lm", weights=None, **TINY)
    excluded = {v.path for v in weight_decay_exclusions(model)}
    for variable in model.weights:
        name = variable.path.split("/")[-1]
        in_group = (
            name in ("gamma", "beta", "bias", "embeddings", "mlm_output_bias")
            or "embedding" in variable.path
        )
        assert (variable.path in excluded) == in_group, variable.path
    only_norms = {v.path.split("/")[-1] for v in weight_decay_exclusions(model, ("norm",))}
    assert only_norms == {"gamma", "beta"}


def test_adamw_decays_only_included_weights_and_applies_lr_multipliers():
    model = keras.Sequential(
        [keras.layers.Dense(4, name="low"), keras.layers.Dense(4, name="high")]
    )
    model.build((None, 3))
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.5)
    low_kernel, high_kernel = model.layers[0].kernel, model.layers[1].kernel
    optimizer.set_learning_rate_multipliers({low_kernel.path: 0.25})
    optimizer.exclude_from_weight_decay(var_list=[high_kernel])
    before = [v.numpy() for v in model.trainable_variables]
    gradients = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply(gradients, model.trainable_variables)
    after = dict(
        zip(
            [v.path for v in model.trainable_variables],
            [v.numpy() for v in model.trainable_variables],
        )
    )
    start = dict(zip([v.path for v in model.trainable_variables], before))
    # Adam's first step moves every weight by lr * multiplier; decay subtracts lr * wd * w.
    low = start[low_kernel.path]
    np.testing.assert_allclose(after[low_kernel.path], low - 0.1 * 0.5 * low - 0.025, atol=1e-5)
    high = start[high_kernel.path]
    np.testing.assert_allclose(after[high_kernel.path], high - 0.1, atol=1e-5)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.set_learning_rate_multipliers({low_kernel.path: 0.5})


def test_create_optimizer_follows_the_config(tmp_path):
    model = zoo.get("gpt_tiny", task="causal_lm", weights=None, **TINY)
    config = TrainerConfig(str(tmp_path), steps=100, warmup_steps=10, learning_rate=0.01)
    optimizer = create_optimizer(config, model)
    assert isinstance(optimizer, AdamW)
    assert float(optimizer.learning_rate) == 0.0  # step 0 of the warmup
    half = TrainerConfig(str(tmp_path), steps=100, precision="mixed_float16")
    assert isinstance(create_optimizer(half, model), keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "`steps` must be a positive integer"),
        ("decay", "exp", "`decay` must be one of"),
        ("precision", "float16", "`precision` must be one of"),
        ("weight_decay_exclude", ("norms",), "may only contain"),
        ("label_smoothing", 1.0, "label_smoothing"),
        ("final_learning_rate", 1.0, "final_learning_rate"),
        ("layerwise_lr_decay", 1.5, "layerwise_lr_decay"),
        ("profile_steps", (5, 2), "profile_steps"),
        ("lora_alpha", 8.0, "needs `lora_rank`"),
    ],
)
def test_config_rejects_bad_values(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig(str(tmp_path), **{"steps": 10, field: value})
    with pytest.raises(ValueError, match="inverse_sqrt"):
        TrainerConfig(str(tmp_path), steps=10, decay="inverse_sqrt")
