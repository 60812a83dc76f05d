"""`Trainer.fit` with Keras callbacks, its `History`, and early stopping (built in and through
`keras.callbacks.EarlyStopping`), on a tiny causal LM whose validation loss rises."""

import csv
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import tiny_causal_lm

from kerasllm.training import Trainer, TrainerConfig, TrainingHistory


def conflicting_data(target):
    """Random inputs, every next token `target`: training on target 3 while validating on
    target 4 makes the validation loss rise at every evaluation, deterministically."""
    ids = np.random.default_rng(0).integers(1, 90, (16, 8)).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    y = np.full_like(ids, target)
    return tf.data.Dataset.from_tensor_slices((x, y, np.ones(ids.shape, "float32"))).batch(8)


TRAIN, VALID = conflicting_data(3), conflicting_data(4)


def _sleep() -> np.float32:
    time.sleep(0.02)
    return np.float32(0.0)


def slow_down(x, y, w):
    """20 ms more per batch."""
    return x, y, w + tf.numpy_function(_sleep, [], tf.float32)


def make_trainer(model_dir, **config):
    options = dict(steps=20, learning_rate=1e-2, eval_every=2, steps_per_loop=2, verbose=0)
    return Trainer(
        tiny_causal_lm,
        "causal_lm",
        TrainerConfig(str(model_dir), **{**options, **config}),
        strategy="one_device",
    )


def test_built_in_early_stopping_stops_at_the_right_evaluation_with_a_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, early_stopping_patience=2, best_metric="loss")
    history = trainer.fit(TRAIN, VALID)
    losses = history.history["val_loss"]
    assert losses == sorted(losses) and len(set(losses)) == 3  # rising at every evaluation
    # The best is the first evaluation (step 2); two without improvement: stop at step 6.
    assert history.history["step"] == [2, 4, 6] and history.epoch == [0, 1, 2]
    assert (history["step"], history.stop_reason, trainer.step) == (6, "early_stopping", 6)
    assert trainer.checkpointer.manager.latest_checkpoint.endswith("ckpt-6")
    assert trainer.checkpointer.best_record()["step"] == 2
    assert history["eval"]["loss"] == losses[-1]

    with pytest.raises(ValueError, match="early_stopping_patience` needs `eval_every"):
        TrainerConfig(str(tmp_path), steps=4, early_stopping_patience=2)
    with pytest.raises(ValueError, match="early_stopping_patience` must be a positive integer"):
        TrainerConfig(str(tmp_path), steps=4, eval_every=2, early_stopping_patience=0)
    unknown = make_trainer(
        tmp_path / "unknown", early_stopping_patience=1, early_stopping_metric="val_bleu"
    )
    with pytest.raises(ValueError, match=r"early_stopping_metric='val_bleu'.*'val_accuracy'"):
        unknown.fit(TRAIN, VALID)


def test_keras_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=2, restore_best_weights=True
    )
    trainer = make_trainer(tmp_path)
    history = trainer.fit(TRAIN, VALID, callbacks=[stopper])
    assert (history["step"], history.stop_reason) == (6, "callback")
    assert stopper.stopped_epoch == 2 and stopper.best_epoch == 0
    assert trainer.checkpointer.manager.latest_checkpoint.endswith("ckpt-6")
    # The weights in memory are those of the best evaluation again.
    restored = trainer.evaluate(VALID)["loss"]
    assert restored == pytest.approx(history.history["val_loss"][0], rel=1e-5)


def test_history_csv_logger_and_a_custom_callback_see_each_evaluation(tmp_path):
    events = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.params["epochs"], self.params["steps"]))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_train_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, round(logs["loss"], 3) > 0))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append(("train_end", logs["step"]))

    csv_path = tmp_path / "log.csv"
    trainer = make_trainer(tmp_path / "run", steps=6, eval_every=3, log_every=3)
    history = trainer.fit(TRAIN, VALID, callbacks=[Spy(), keras.callbacks.CSVLogger(str(csv_path))])
    assert isinstance(history, TrainingHistory) and isinstance(history, keras.callbacks.History)
    assert trainer.model.history is history
    names = [
        "gradient_norm", "learning_rate", "loss", "step", "steps_per_second",
        "tokens_per_second", "val_accuracy", "val_loss", "val_perplexity",
    ]  # fmt: skip
    assert events[0] == ("train_begin", 2, 3)
    # Calls of 2 updates (steps_per_loop) cut at the evaluation at 3: batches 1, 2 of each epoch.
    assert events[1:] == [
        ("epoch_begin", 0), ("batch_end", 1, True), ("batch_end", 2, True),
        ("epoch_end", 0, names), ("epoch_begin", 1), ("batch_end", 1, True),
        ("batch_end", 2, True), ("epoch_end", 1, names), ("train_end", 6),
    ]  # fmt: skip
    assert history.epoch == [0, 1] and history.history["step"] == [3, 6]
    assert all(len(values) == 2 for values in history.history.values())
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert [float(row["step"]) for row in rows] == [3, 6]
    assert float(rows[1]["val_loss"]) == pytest.approx(history.history["val_loss"][1])
    # The old summary is still there.
    assert history["step"] == 6 and set(history["eval"]) == {"loss", "accuracy", "perplexity"}
    assert history["train"]["loss"] > 0

    # Resumed: the epochs continue; a callback that stops training stops it after that call.
    def stop_after_first_call(batch, logs):
        trainer.model.stop_training = True

    trainer.config.steps = 12
    stop = keras.callbacks.LambdaCallback(on_train_batch_end=stop_after_first_call)
    history = trainer.fit(TRAIN, VALID, callbacks=[stop])
    assert (history["step"], history.stop_reason) == (8, "callback")
    assert history.epoch == [2] and history.history["step"] == [8]
    assert trainer.checkpointer.manager.latest_checkpoint.endswith("ckpt-8")


def test_callbacks_must_be_keras_callbacks(tmp_path):
    trainer = make_trainer(tmp_path, steps=2)
    with pytest.raises(TypeError, match="keras.callbacks.Callback instances; got function"):
        trainer.fit(TRAIN, callbacks=[lambda logs: None])


def test_the_progress_display_writes_plain_lines_when_not_a_terminal(tmp_path, capsys):
    trainer = make_trainer(tmp_path, steps=4, verbose=1)
    trainer.fit(TRAIN, VALID)
    out = capsys.readouterr().out
    assert not set(out) & {"\r", "\b", "\x1b"}
    progress = [line for line in out.splitlines() if line.startswith("step ") and "/4" in line]
    assert progress and progress[-1].startswith("step 4/4 [====================] 100% loss=")
    assert "step 2 eval: loss=" in out


def test_a_training_loop_call_lasts_about_seconds_per_loop(tmp_path):
    """Ctrl-C and SIGTERM take effect between calls: with steps_per_loop=50 and 20 ms per
    update a call would last a second; seconds_per_loop=0.1 keeps calls after the first (which
    measures the rate) to about 5 updates."""

    ends = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: ends.append(b))
    trainer = make_trainer(
        tmp_path, steps=80, eval_every=None, steps_per_loop=50, seconds_per_loop=0.1
    )
    trainer.fit(TRAIN.map(slow_down), callbacks=[record])
    calls = np.diff([-1, *ends]).tolist()
    assert calls[0] == 50 and sum(calls) == 80
    assert max(calls[1:]) <= 15, calls  # about 5; 30 in one call without the bound
