"""Checkpoints: atomic saves, verified restores with fall-back, partial initialization, clear
errors (a full disk, nothing restorable) and no leftovers of interrupted saves."""

import errno
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


def test_every_checkpoint_damaged_is_one_clear_error_not_a_fresh_start(tmp_path):
    checkpointer_with_saves(tmp_path, steps=(1, 2))
    for step in (1, 2):
        os.truncate(data_file(tmp_path, step), 8)
    _, _, checkpointer = fresh(tmp_path)
    with pytest.raises(CheckpointError) as error:
        checkpointer.restore_latest()
    message = str(error.value)
    # One line that says what (none restorable), where (the directory), and what to do; it
    # once listed every checkpoint on lines of their own.
    assert "\n" not in message
    assert f"None of the 2 checkpoint(s) in {tmp_path} could be restored" in message
    assert "ckpt-2" in message and "move the ckpt-* files" in message
    for step in (1, 2):  # nothing is deleted: the user decides
        assert os.path.getsize(data_file(tmp_path, step)) == 8


def test_a_run_removes_what_interrupted_saves_left_and_nothing_else(tmp_path, capfd):
    # `kill -9` while saving leaves TensorFlow's `ckpt-<n>_temp/` folder (or, a moment later, the
    # data files without their index); on a full disk that kept the disk full forever.
    checkpointer_with_saves(tmp_path, steps=(1, 2))
    leftovers = [tmp_path / "ckpt-3_temp", tmp_path / "best" / "ckpt-9_temp"]
    for folder in leftovers:
        folder.mkdir(parents=True)
        (folder / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 1000)
    orphan = tmp_path / "ckpt-4.data-00000-of-00001"  # its index was never written
    orphan.write_bytes(b"x" * 1000)
    foreign = [
        tmp_path / "my_temp",  # not a checkpoint's name
        tmp_path / "other-3_temp",  # another prefix
        tmp_path / "ckpt-x_temp",  # no number
        tmp_path / "data" / "ckpt-5_temp",  # not in the manager's directory
    ]
    for folder in foreign:
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("mine")
    (tmp_path / "ckpt-6_temp").write_text("a file, not TensorFlow's folder")
    _, step, checkpointer = fresh(tmp_path)
    assert not any(folder.exists() for folder in leftovers) and not orphan.exists()
    assert all((folder / "keep.txt").read_text() == "mine" for folder in foreign)
    assert (tmp_path / "ckpt-6_temp").is_file()
    assert "ckpt-3_temp, left by a checkpoint save that did not complete" in capfd.readouterr().err
    assert checkpointer.restore_latest().endswith("ckpt-2")  # the saved ones are untouched
    assert int(step.numpy()) == 2


def disk_full_errors():
    return [
        OSError(errno.ENOSPC, "No space left on device"),
        tf.errors.ResourceExhaustedError(
            None, None, "/run/ckpt-3_temp/part-00000-of-00001.data; No space left on device"
        ),
    ]


@pytest.mark.parametrize("error", disk_full_errors(), ids=["OSError", "ResourceExhausted"])
def test_a_full_disk_is_one_clear_error_and_loses_no_saved_checkpoint(tmp_path, error):
    model, _, checkpointer = checkpointer_with_saves(tmp_path, steps=(1, 2))
    checkpointer.manager._max_to_keep = 2  # a successful save of 3 would now delete ckpt-1
    partial = tmp_path / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001"

    def save_until_the_disk_is_full(checkpoint_number):
        # What TensorFlow does before running out of space: a partial shard in `_temp/`.
        partial.parent.mkdir()
        partial.write_bytes(b"x" * 1000)
        raise error

    checkpointer.manager.save = save_until_the_disk_is_full
    with pytest.raises(CheckpointError) as raised:
        checkpointer.save(3)
    message = str(raised.value)
    assert "\n" not in message
    assert f"Cannot save checkpoint {tmp_path / 'ckpt-3'}: no space left on device" in message
    assert f"the newest is {tmp_path / 'ckpt-2'}" in message
    assert "Free space on the disk of" in message and "rerun the same command" in message
    assert raised.value.__cause__ is error
    # The failed save's leftovers are gone at once (they held the space the next save needs);
    # both saved checkpoints are intact and restore.
    assert not partial.parent.exists()
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    _, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest().endswith("ckpt-2") and int(step.numpy()) == 2


def test_a_failed_save_keeps_an_earlier_checkpoint_of_the_same_number(tmp_path):
    # A run resumed from an older checkpoint saves the same numbers again; failing to replace
    # ckpt-2 must not delete the ckpt-2 already there.
    _, _, checkpointer = checkpointer_with_saves(tmp_path, steps=(1, 2))
    before = {p.name: p.read_bytes() for p in tmp_path.glob("ckpt-2.*")}

    def fail(checkpoint_number):
        raise tf.errors.PermissionDeniedError(None, None, "ckpt-2_temp; Permission denied")

    checkpointer.manager.save = fail
    with pytest.raises(CheckpointError, match="PermissionDeniedError: ckpt-2_temp; Permission"):
        checkpointer.save(2)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("ckpt-2.*")} == before


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


def test_a_checkpoint_written_before_the_disk_filled_up_is_kept(tmp_path):
    # The data and index were complete; only rewriting the `checkpoint` list failed. The
    # checkpoint stays, and a resume finds it on disk.
    _, step, checkpointer = checkpointer_with_saves(tmp_path, steps=(1, 2))
    step.assign(3)
    save = checkpointer.manager.save

    def list_not_updated(checkpoint_number):
        save(checkpoint_number=checkpoint_number)
        raise OSError(errno.ENOSPC, "No space left on device")

    checkpointer.manager.save = list_not_updated
    with pytest.raises(CheckpointError, match="ckpt-3 was written but the checkpoint list"):
        checkpointer.save(3)
    _, step, checkpointer = fresh(tmp_path)
    assert checkpointer.restore_latest().endswith("ckpt-3") and int(step.numpy()) == 3


TINY_PRETRAIN = ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--steps", "1"]
TINY_PRETRAIN += ["--set", "num_layers=1", "--set", "hidden_dim=16", "--set", "intermediate_dim=32"]
TINY_PRETRAIN += ["--batch-size", "4", "--sequence-length", "16", "--vocabulary-size", "400"]
TINY_PRETRAIN += ["--verbose", "0"]


def error_lines(text):
    return [line for line in text.splitlines() if "error:" in line]


def test_the_command_line_ends_checkpoint_failures_with_one_line(tmp_path, capsys, monkeypatch):
    from kerasllm import cli
    from kerasllm.testing import synthetic_text_samples

    corpus = tmp_path / "corpus.txt"
    samples = synthetic_text_samples()
    corpus.write_text("\n".join(samples["news"] + samples["english"][:25]) + "\n")
    args = [*TINY_PRETRAIN, "--data", str(corpus), "--model-dir"]

    # Every checkpoint unreadable: status 1 and one line naming the directory, no traceback.
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "ckpt-1.index").write_bytes(b"not an index")
    (corrupt / "ckpt-1.data-00000-of-00001").write_bytes(b"not data")
    assert cli.main([*args, str(corrupt)]) == cli.FAILURE_EXIT_STATUS
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert line.startswith(f"kerasllm pretrain: error: None of the 1 checkpoint(s) in {corrupt}")

    # The disk fills up at the first save.
    def no_space(self, checkpoint_number=None, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-1_temp; No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", no_space)
    full = tmp_path / "full"
    assert cli.main([*args, str(full)]) == cli.FAILURE_EXIT_STATUS
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"kerasllm pretrain: error: Cannot save checkpoint {full / 'ckpt-1'}")
    assert "no space left on device" in line and "there were none yet" in line


def test_scripts_end_checkpoint_failures_with_one_line_and_status_1(capsys, monkeypatch):
    # `examples/translate.py --train` runs its training through `exit_when_interrupted`, which
    # ends the process with os._exit (tf.data's threads would delay a normal exit).
    from kerasllm import cli

    def exit_now(status):
        raise SystemExit(status)

    monkeypatch.setattr(cli.os, "_exit", exit_now)
    monkeypatch.setattr(cli.sys, "argv", ["examples/translate.py", "--train"])

    def fails(error):
        def train():
            raise error

        return train

    disk_full = OSError(errno.ENOSPC, "No space left on device")
    for error, expected in [
        (CheckpointError("None of the 2 checkpoint(s) in /r could be restored"), "None of the 2"),
        (RuntimeError("writing events failed"), "no space left on device"),
    ]:
        error.__cause__ = disk_full if isinstance(error, RuntimeError) else None
        with pytest.raises(SystemExit) as exited:
            cli.exit_when_interrupted(fails(error))
        assert exited.value.code == cli.FAILURE_EXIT_STATUS
        [line] = error_lines(capsys.readouterr().err)
        assert line.startswith("translate.py: error: ") and expected in line
    with pytest.raises(RuntimeError, match="a bug"):  # anything else keeps its traceback
        cli.exit_when_interrupted(fails(RuntimeError("a bug")))


def test_rerun_with_another_model_names_the_configuration_differences(tmp_path):
    from training_helpers import causal_batches, reference_config, tiny_causal_lm

    from kerasllm.training import Trainer

    config = reference_config(tmp_path, steps=2, checkpoint_every=2)
    Trainer(tiny_causal_lm, "causal_lm", config, "one_device").fit(causal_batches())
    assert (tmp_path / "model_config.json").exists()
    # The same directory, a wider model: no raw RestoreV2/shape error, but what differs.
    with pytest.raises(CheckpointError) as raised:
        Trainer(lambda: tiny_causal_lm(hidden_dim=32), "causal_lm", config, "one_device")
    message = str(raised.value)
    assert "\n" not in message and "belong to another model configuration" in message
    assert "hidden_dim: 16 -> 32" in message and "--model-dir" in message
    # The same model resumes as before.
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, "one_device")
    assert trainer.step == 2
