"""`precision="auto"` and `jit_compile="auto"`: validated by the config, resolved by the Trainer
(from `kerasllm.hardware`, faked here so the tests mean the same on every machine), logged, and
reached from the command line."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import causal_batches, tiny_causal_lm

from kerasllm import bundle, hardware
from kerasllm.training import Trainer, TrainerConfig

BF16_CPU = hardware.Choice("mixed_bfloat16", False, "cpu", "fake CPU flags amx_bf16")
F16_GPU = hardware.Choice("mixed_float16", True, "gpu", "fake compute capability 7.5")


@pytest.fixture
def fake_hardware(monkeypatch):
    def use(choice):
        monkeypatch.setattr(hardware, "detect", lambda: choice)

    return use


def test_auto_is_the_default_and_invalid_values_name_the_field(tmp_path):
    config = TrainerConfig(str(tmp_path), steps=1)
    assert (config.precision, config.jit_compile) == ("auto", "auto")
    with pytest.raises(ValueError, match=r"`precision` must be one of \['auto', 'float32'"):
        TrainerConfig(str(tmp_path), steps=1, precision="bfloat16")
    with pytest.raises(ValueError, match="`jit_compile` must be True, False or 'auto'"):
        TrainerConfig(str(tmp_path), steps=1, jit_compile="on")


def test_the_trainer_resolves_auto_and_says_why(tmp_path, fake_hardware, capsys):
    fake_hardware(BF16_CPU)
    config = TrainerConfig(str(tmp_path), steps=1, verbose=2)
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, "one_device")
    assert (trainer.config.precision, trainer.config.jit_compile) == ("mixed_bfloat16", False)
    assert trainer.model.dtype_policy.name == "mixed_bfloat16"
    assert trainer.hardware_choice is BF16_CPU
    assert config.precision == "auto"  # the caller's config is left as given
    trainer.fit(causal_batches())
    out = capsys.readouterr().out
    assert "precision mixed_bfloat16, XLA off (auto for cpu: fake CPU flags amx_bf16)" in out
    # What ran is what the model directory records.
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["precision"], saved["jit_compile"]) == ("mixed_bfloat16", False)


def test_float16_from_auto_gets_loss_scaling(tmp_path, fake_hardware):
    fake_hardware(F16_GPU)
    trainer = Trainer(tiny_causal_lm, "causal_lm", TrainerConfig(str(tmp_path), steps=1, verbose=0))
    assert (trainer.config.precision, trainer.config.jit_compile) == ("mixed_float16", True)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)


def test_a_built_model_keeps_its_policy_under_auto(tmp_path, fake_hardware):
    fake_hardware(BF16_CPU)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tiny_causal_lm()  # built under the global float32 policy
    trainer = Trainer(
        model, "causal_lm", TrainerConfig(str(tmp_path), steps=1, verbose=0), strategy
    )
    assert (trainer.config.precision, trainer.config.jit_compile) == ("float32", False)


def test_explicit_values_do_not_consult_the_hardware(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "detect", lambda: pytest.fail("detected without 'auto'"))
    config = TrainerConfig(str(tmp_path), steps=1, precision="float32", jit_compile=False)
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, "one_device")
    assert trainer.config is config and trainer.hardware_choice is None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], ("auto", "auto")),
        (["--precision", "float32", "--jit-compile", "off"], ("float32", False)),
        (["--precision", "mixed_bfloat16", "--jit-compile", "on"], ("mixed_bfloat16", True)),
        (["--xla"], ("auto", True)),
    ],
)
def test_command_line_flags_reach_the_config(tmp_path, flags, expected):
    from kerasllm.cli import build_parser
    from kerasllm.cli.pretrain import config_from_args

    args = build_parser().parse_args(
        ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--data", "news"]
        + ["--model-dir", str(tmp_path), *flags]
    )
    config = config_from_args(args)
    assert (config.precision, config.jit_compile) == expected


def test_a_bundle_of_a_mixed_precision_model_loads_in_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")  # the conftest restores float32
    trained = tiny_causal_lm()
    keras.config.set_dtype_policy("float32")
    path = bundle.Bundle(trained, {}, {}).save(tmp_path / "bundle")
    assert "mixed_bfloat16" not in (path / "bundle.json").read_text()
    loaded = bundle.load(path).model
    assert loaded.dtype_policy.name == "float32"
    assert all(layer.dtype_policy.name == "float32" for layer in loaded.backbone.layers)
    for a, b in zip(trained.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    reference = tiny_causal_lm()  # float32, with the trained weights
    reference.set_weights(trained.get_weights())
    inputs = {"token_ids": np.array([[5, 6, 7, 8]]), "padding_mask": np.ones((1, 4), "int32")}
    np.testing.assert_allclose(loaded(inputs), reference(inputs), atol=1e-6)
