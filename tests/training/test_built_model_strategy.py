"""A model built before the Trainer (outside its strategy's scope) trains under the strategy it
was built in, as Keras' own `fit` does; strategies that cannot hold it fail with a clear error."""

import numpy as np
import pytest
import tensorflow as tf
from training_helpers import causal_batches, tiny_causal_lm

from kerasllm.training import Trainer, TrainerConfig, distribution


def config(tmp_path, steps=2):
    return TrainerConfig(
        str(tmp_path), steps=steps, learning_rate=1e-2, precision="float32", verbose=0
    )


@pytest.mark.parametrize("strategy", [None, "auto", "one_device"])
def test_a_model_built_outside_any_scope_trains_with_the_default_strategy(tmp_path, strategy):
    model = tiny_causal_lm()  # built here: its variables belong to no strategy's scope
    before = [v.numpy() for v in model.trainable_variables]
    trainer = Trainer(model, "causal_lm", config(tmp_path), strategy=strategy)
    assert trainer.model is model
    assert trainer.strategy is tf.distribute.get_strategy()  # the default strategy
    history = trainer.fit(causal_batches())
    assert history["step"] == 2
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.isfinite(a).all() for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


def test_auto_keeps_the_strategy_the_model_was_built_in(tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = tiny_causal_lm()
    trainer = Trainer(model, "causal_lm", config(tmp_path))
    assert trainer.strategy is strategy
    assert trainer.fit(causal_batches())["step"] == 2


def test_auto_over_several_devices_refuses_a_model_on_one(tmp_path, monkeypatch):
    # As on a host with two GPUs: "auto" means mirrored, which cannot hold the built model.
    monkeypatch.setattr(distribution, "resolve_name", lambda name="auto": "mirrored")
    with pytest.raises(ValueError, match=r"strategy='auto' chose 'mirrored'.*function that builds"):
        Trainer(tiny_causal_lm(), "causal_lm", config(tmp_path))


def test_an_explicit_strategy_must_be_the_one_that_built_the_model(tmp_path):
    # OneDeviceStrategy used to fail later, in `optimizer.build`, with TensorFlow's
    # "`colocate_vars_with` must only be passed a variable created in this ... scope()".
    with pytest.raises(ValueError, match=r"not created in the scope of the `strategy` argument"):
        Trainer(
            tiny_causal_lm(),
            "causal_lm",
            config(tmp_path),
            strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        )
