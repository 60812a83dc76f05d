import keras
import numpy as np
import pytest

from kerasllm import zoo
from kerasllm.testing import decoder_inputs, encoder_inputs, seq2seq_inputs

# Published parameter counts of the reference implementations (backbone, pooler included).
PUBLISHED = {
    "bert_tiny": 4_385_920,
    "bert_mini": 11_170_560,
    "bert_small": 28_763_648,
    "bert_medium": 41_373_184,
    "bert_base": 109_482_240,
    "gpt_base": 124_439_808,
    "t5_small": 60_506_624,
}
BUILTIN = [
    "bert_tiny",
    "bert_mini",
    "bert_small",
    "bert_medium",
    "bert_base",
    "gpt_tiny",
    "gpt_small",
    "gpt_base",
    "transformer_tiny",
    "transformer_small",
    "transformer_base",
    "t5_small",
]
LARGE = {"bert_base", "gpt_base", "transformer_base", "t5_small", "bert_medium", "gpt_small"}


def _inputs(family, length=8):
    if family == "encoder":
        return encoder_inputs(length=length)
    if family == "decoder":
        return decoder_inputs(length=length)
    return seq2seq_inputs(source_length=length, target_length=length - 2)


def _param(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in LARGE else name


@pytest.mark.parametrize("name", BUILTIN)
def test_parameter_counts(name):
    model = zoo.get(name, weights=None)
    assert model.count_params() == zoo.get_preset(name).num_params
    if name in PUBLISHED:
        assert model.count_params() == PUBLISHED[name]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_preset_runs_forward(name):
    model = zoo.get(name, weights=None)
    out = model(_inputs(zoo.get_preset(name).family))
    key = "encoder_sequence_output" if "encoder_sequence_output" in out else "sequence_output"
    assert out[key].shape[-1] == model.hidden_dim
    assert np.all(np.isfinite(out[key]))


@pytest.mark.parametrize("name", [_param(n) for n in BUILTIN])
def test_preset_saves_and_reloads(name, tmp_path):
    model = zoo.get(name, weights=None)
    inputs = _inputs(zoo.get_preset(name).family)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for key, value in model(inputs).items():
        np.testing.assert_allclose(restored(inputs)[key], value, atol=1e-6)
    assert type(model).from_config(model.get_config()).get_config() == model.get_config()


def test_list_has_every_builtin_with_description_and_size():
    rows = {row["name"]: row for row in zoo.list()}
    for name in BUILTIN:
        assert rows[name]["description"]
        assert rows[name]["num_params"] == zoo.get_preset(name).num_params


@pytest.mark.parametrize(
    "task, family_preset, overrides, cls",
    [
        ("masked_lm", "bert_tiny", {}, "MaskedLM"),
        ("causal_lm", "gpt_tiny", {}, "CausalLM"),
        ("seq2seq_lm", "transformer_tiny", {}, "Seq2SeqLM"),
        ("classifier", "bert_tiny", {"num_classes": 2}, "SequenceClassifier"),
        ("token_classifier", "bert_tiny", {"num_classes": 9}, "TokenClassifier"),
        ("question_answerer", "bert_tiny", {}, "QuestionAnswerer"),
    ],
)
def test_get_task(task, family_preset, overrides, cls):
    model = zoo.get(family_preset, task=task, num_layers=1, **overrides)
    assert type(model).__name__ == cls
    assert model.backbone.num_layers == 1


def test_unknown_preset_lists_closest_names():
    with pytest.raises(ValueError, match="Did you mean 'bert_small'"):
        zoo.get("bert_smal")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_dim": 129}, "divisible by `num_heads`"),
        ({"num_layers": 0}, "positive integer"),
        ({"dropout": -0.5}, "must be in"),
        ({"hiden_dim": 64}, "Did you mean 'hidden_dim'"),
    ],
)
def test_invalid_override_fails_before_any_weight(monkeypatch, overrides, message):
    def no_weights(*args, **kwargs):
        raise AssertionError("a weight was created before validation")

    monkeypatch.setattr(keras.layers.Layer, "add_weight", no_weights)
    with pytest.raises(ValueError, match=message):
        zoo.get("bert_tiny", **overrides)


def test_task_family_mismatch():
    with pytest.raises(ValueError, match="needs a decoder preset"):
        zoo.get("bert_tiny", task="causal_lm")


def test_user_preset_register_save_and_load(tmp_path):
    preset = zoo.register(
        "test_user_gpt",
        "decoder",
        {**zoo.get_preset("gpt_tiny").config, "num_layers": 1, "vocabulary_size": 500},
        description="user preset",
        overwrite=True,
    )
    assert zoo.get("test_user_gpt").num_layers == 1
    path = zoo.save_preset_file(preset, tmp_path / "preset.json")
    model = zoo.get(str(path))
    assert model.vocabulary_size == 500
    with pytest.raises(ValueError, match="already exists"):
        zoo.register("test_user_gpt", "decoder", preset.config)
    with pytest.raises(ValueError, match="Unknown Decoder config key 'layers'"):
        zoo.register("bad", "decoder", {"layers": 2})


def test_weights_argument_loads_saved_weights(tmp_path):
    model = zoo.get("bert_tiny", num_layers=1)
    path = tmp_path / "bert.weights.h5"
    model.save_weights(path)
    loaded = zoo.get("bert_tiny", num_layers=1, weights=str(path))
    inputs = encoder_inputs()
    np.testing.assert_allclose(loaded(inputs)["pooled_output"], model(inputs)["pooled_output"])
    with pytest.raises(FileNotFoundError):
        zoo.get("bert_tiny", weights=str(tmp_path / "missing.weights.h5"))


def test_weights_argument_loads_a_training_checkpoint(tmp_path):
    import tensorflow as tf

    from kerasllm.training import Checkpointer, ModelState

    model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    Checkpointer(str(tmp_path), {"model": ModelState(model), "step": tf.Variable(7)}).save(7)
    inputs = encoder_inputs()
    for weights in (tmp_path, tmp_path / "ckpt-7"):  # the model directory or one prefix
        loaded = zoo.get(
            "bert_tiny", task="classifier", num_classes=2, num_layers=1, weights=str(weights)
        )
        np.testing.assert_allclose(loaded(inputs), model(inputs))
    # A checkpoint that covers only part of the model is an error, not a half-loaded model.
    with pytest.raises(ValueError, match="holds .* of the .* weights"):
        zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=2, weights=str(tmp_path))
