"""Checkpoints: atomic saves, verified restores with fall-back, partial initialization."""

import os

import numpy as np
import pytest
import tensorflow as tf
from training_helpers import SMALL

from kerasllm import zoo
from kerasllm.training import (
    Checkpointer,
    CheckpointError,
    ModelState,
    average_checkpoints,
    load_model_weights,
)


def tiny_encoder_task(task, **kwargs):
    return zoo.get("bert_tiny", task=task, weights=None, **{**SMALL, **kwargs})


def checkpointer_with_saves(model_dir, steps=(1, 2, 3)):
    """A model whose weights are filled with the step number at each save."""
    model = tiny_encoder_task("masked_lm")
    step = tf.Variable(0, dtype=tf.int64)
    checkpointer = Checkpointer(str(model_dir), {"model": ModelState(model), "step": step})
    for value in steps:
        for variable in model.weights:
            variable.assign(np.full(variable.shape, value, "float32"))
        step.assign(value)
        checkpointer.save(value)
    return model, step, checkpointer


def fresh(model_dir):
    model = tiny_encoder_task("masked_lm")
    step = tf.Variable(0, dtype=tf.int64)
    return (
        model,
        step,
        Checkpointer(str(model_dir), {"model": ModelState(model), "step": step}),
    )


def data_file(model_dir, step):
    return os.path.join(model_dir, f"ckpt-{step}.data-00000-of-00001")


def test_restore_latest(tmp_path):
    checkpointer_with_saves(tmp_path)
    model, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest().endswith("ckpt-3")
    assert int(step.numpy()) == 3
    assert all(np.all(v.numpy() == 3) for v in model.weights)


def test_a_relative_model_dir_resumes(tmp_path, monkeypatch):
    # The state file stores prefixes relative to its directory; with a relative model_dir they
    # were once joined onto it twice, so a resume found no checkpoint at all.
    monkeypatch.chdir(tmp_path)
    checkpointer_with_saves("runs/relative")
    model, step, checkpointer = fresh("runs/relative")
    assert checkpointer.restore_latest() == str(tmp_path / "runs" / "relative" / "ckpt-3")
    assert int(step.numpy()) == 3
    assert all(np.all(v.numpy() == 3) for v in model.weights)


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "truncate_index"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capfd, damage):
    checkpointer_with_saves(tmp_path)
    if damage == "truncate":
        path = data_file(tmp_path, 3)
        os.truncate(path, os.path.getsize(path) // 2)
    elif damage == "flip_bytes":
        path = data_file(tmp_path, 3)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            chunk = f.read(16)
            f.seek(-16, os.SEEK_CUR)
            f.write(bytes(b ^ 0xFF for b in chunk))
    else:
        path = str(tmp_path / "ckpt-3.index")
        os.truncate(path, 10)
    model, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest().endswith("ckpt-2")
    assert int(step.numpy()) == 2
    assert all(np.all(v.numpy() == 2) for v in model.weights)
    assert "ckpt-3 is unreadable" in capfd.readouterr().err


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(tmp_path):
    checkpointer_with_saves(tmp_path, steps=(1, 2))
    for step in (1, 2):
        os.truncate(data_file(tmp_path, step), 8)
    _, _, checkpointer = fresh(tmp_path)
    with pytest.raises(CheckpointError, match="none could be restored"):
        checkpointer.restore_latest()


def test_a_damaged_state_file_still_finds_the_checkpoints(tmp_path):
    checkpointer_with_saves(tmp_path)
    (tmp_path / "checkpoint").write_text("garbage {{{")
    _, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest().endswith("ckpt-3")
    assert int(step.numpy()) == 3


def test_an_empty_directory_restores_nothing(tmp_path):
    _, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest() is None
    assert int(step.numpy()) == 0


def test_require_all_loads_a_whole_model_and_ignores_dropout_seeds(tmp_path):
    # Dropout layers own seed-generator variables that checkpoints never copy; they must not
    # count as missing weights.
    def classifier(**overrides):
        config = {**SMALL, "dropout": 0.1, **overrides}
        return zoo.get("bert_tiny", task="classifier", num_classes=3, weights=None, **config)

    saved = classifier()
    assert any("seed_generator" in v.path for v in saved.variables)
    Checkpointer(str(tmp_path), {"model": ModelState(saved)}).save(1)
    same = classifier()
    loaded, _ = load_model_weights(same, str(tmp_path), require_all=True)
    assert loaded == len(saved.weights)
    for got, want in zip(same.weights, saved.weights):
        np.testing.assert_array_equal(got, want)
    larger = classifier(num_layers=3)
    with pytest.raises(ValueError, match="holds .* of the .* weights"):
        load_model_weights(larger, str(tmp_path), require_all=True)


def test_non_chief_workers_write_nothing_into_the_model_dir(tmp_path):
    model = tiny_encoder_task("masked_lm")
    worker = Checkpointer(str(tmp_path), {"model": ModelState(model)}, is_chief=False)
    assert worker.save(5) is None
    assert worker.save_best(5, "loss", 1.0) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_pretraining_checkpoint_initializes_a_classifier_backbone(tmp_path):
    pretrained, _, _ = checkpointer_with_saves(tmp_path, steps=(7,))
    classifier = tiny_encoder_task("classifier", num_classes=3)
    head_before = classifier.classifier.kernel.numpy()
    loaded, total = load_model_weights(classifier, str(tmp_path))
    backbone = {v.path for v in classifier.backbone.weights}
    assert loaded == len(backbone) and total == len(classifier.variables)
    for variable in classifier.backbone.weights:
        assert np.all(variable.numpy() == 7), variable.path
    np.testing.assert_array_equal(classifier.classifier.kernel.numpy(), head_before)
    decoder = zoo.get("gpt_tiny", task="causal_lm", weights=None, **{**SMALL, "hidden_dim": 8})
    with pytest.raises(ValueError, match="No variable"):
        load_model_weights(decoder, str(tmp_path))
    with pytest.raises(FileNotFoundError):
        load_model_weights(classifier, str(tmp_path / "missing"))


def test_average_checkpoints_sets_the_mean_of_every_weight(tmp_path):
    # Distinct random values per weight and checkpoint, so a mix-up of weights shows; the saved
    # model has dropout, so its checkpoints hold seed states too, which must not be copied.
    saved = tiny_encoder_task("masked_lm", dropout=0.1)
    checkpointer = Checkpointer(str(tmp_path), {"model": ModelState(saved)})
    rng = np.random.default_rng(0)
    snapshots = []
    for step in (1, 2, 3):
        for variable in saved.weights:
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
        snapshots.append([v.numpy() for v in saved.weights])
        checkpointer.save(step)
    model = tiny_encoder_task("masked_lm", dropout=0.1)
    seeds = {v.path: v.numpy() for v in model.variables if "seed_generator" in v.path}
    assert seeds
    average_checkpoints(model, checkpointer.candidates())
    for i, variable in enumerate(model.weights):
        want = np.mean([snapshot[i] for snapshot in snapshots], axis=0)
        np.testing.assert_allclose(variable.numpy(), want, atol=1e-6, err_msg=variable.path)
    for variable in model.variables:
        if variable.path in seeds:
            np.testing.assert_array_equal(variable.numpy(), seeds[variable.path])
    average_checkpoints(model, checkpointer.candidates()[:2])  # steps 3 and 2
    want = (snapshots[1][0] + snapshots[2][0]) / 2
    np.testing.assert_allclose(model.weights[0].numpy(), want, atol=1e-6)


def test_average_checkpoints_refuses_another_architecture_or_no_checkpoint(tmp_path):
    checkpointer_with_saves(tmp_path, steps=(1,))
    larger = tiny_encoder_task("masked_lm", num_layers=3)
    with pytest.raises(ValueError, match="cannot be averaged.*missing"):
        average_checkpoints(larger, [str(tmp_path)])
    wider = tiny_encoder_task("masked_lm", intermediate_dim=64)
    with pytest.raises(ValueError, match="of shape"):
        average_checkpoints(wider, [str(tmp_path)])
    two_layers = tiny_encoder_task("masked_lm", num_layers=2)
    Checkpointer(str(tmp_path / "deeper"), {"model": ModelState(two_layers)}).save(1)
    one_layer = tiny_encoder_task("masked_lm")  # its weights are a subset of the checkpoint's
    with pytest.raises(ValueError, match="is not a weight of the model"):
        average_checkpoints(one_layer, [str(tmp_path / "deeper")])
    with pytest.raises(ValueError, match="at least one"):
        average_checkpoints(larger, [])
    with pytest.raises(TypeError, match="list of checkpoints"):
        average_checkpoints(larger, str(tmp_path))
