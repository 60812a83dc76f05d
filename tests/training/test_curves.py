"""`learning_curves.png`: written at the end of `Trainer.fit` from the evaluation periods (the
training loss, and the validation loss and metrics when there is evaluation data), only when
there are at least two periods, only by the chief; and `LearningCurvesAction` alone."""

import os

import numpy as np
import pytest
import tensorflow as tf
from training_helpers import tiny_causal_lm

from kerasllm.training import Trainer, TrainerConfig, TrainingHistory
from kerasllm.training.actions import (
    LEARNING_CURVES_FILENAME,
    LearningCurvesAction,
    plot_learning_curves,
)
from kerasllm.training.controller import Evaluation, LoopState

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data():
    ids = np.random.default_rng(0).integers(1, 90, (16, 8)).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    return tf.data.Dataset.from_tensor_slices((x, ids, np.ones(ids.shape, "float32"))).batch(8)


def fit(model_dir, eval_data=True, **config):
    options = dict(steps=4, learning_rate=1e-2, eval_every=2, steps_per_loop=2, verbose=0)
    trainer = Trainer(
        tiny_causal_lm,
        "causal_lm",
        TrainerConfig(str(model_dir), **{**options, **config}),
        strategy="one_device",
    )
    trainer.fit(data(), data() if eval_data else None)
    return os.path.join(model_dir, LEARNING_CURVES_FILENAME)


def is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def test_fit_with_evaluations_writes_a_png(tmp_path):
    path = fit(tmp_path)
    assert is_png(path)
    # Written atomically: no temporary file is left beside it.
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_one_evaluation_period_draws_no_curve(tmp_path):
    # eval_every unset: the whole run is one period, a single point.
    assert not os.path.exists(fit(tmp_path, eval_every=None))


def test_without_evaluation_data_the_training_loss_is_drawn(tmp_path):
    assert is_png(fit(tmp_path, eval_data=False))


def evaluation(step: int, **logs) -> Evaluation:
    return Evaluation(step, step // 2 - 1, {}, {"step": step, **logs})


def test_the_action_alone_writes_only_on_the_chief_s_end_with_two_points(tmp_path):
    lines = []
    action = LearningCurvesAction(str(tmp_path), log=lines.append)
    state = LoopState(start=0, steps=4, step=0, eval_every=2)
    action.on_begin(state)
    action.after_evaluation(state, evaluation(2, loss=2.0, val_loss=2.1, val_accuracy=0.2))
    action.on_end(state)
    assert action.path is None and not os.listdir(tmp_path)
    action.after_evaluation(state, evaluation(4, loss=1.5, val_loss=float("nan")))
    action.on_interrupt(state)  # Ctrl-C stops promptly: nothing drawn there
    assert not os.listdir(tmp_path)
    action.on_end(state)
    assert is_png(tmp_path / LEARNING_CURVES_FILENAME)
    assert lines == [f"Learning curves: {action.path}"]


def test_the_plot_has_a_metrics_panel_only_with_validation_metrics():
    rows = [{"step": 2, "loss": 2.0, "val_loss": 2.2}, {"step": 4, "loss": 1.0, "val_loss": 1.9}]
    assert len(plot_learning_curves(rows).axes) == 1
    rows[0]["val_accuracy"], rows[1]["val_accuracy"] = 0.1, "n/a"  # non-numbers are skipped
    figure = plot_learning_curves(rows, title="run")
    assert len(figure.axes) == 2
    [accuracy] = figure.axes[1].get_lines()
    assert list(accuracy.get_xdata()) == [2] and figure.axes[0].get_title() == "run: loss"


@pytest.mark.parametrize("is_chief", [True, False])
def test_only_the_chief_writes_it(tmp_path, is_chief):
    trainer = Trainer(
        tiny_causal_lm,
        "causal_lm",
        TrainerConfig(str(tmp_path), steps=4, eval_every=2, verbose=0),
        strategy="one_device",
    )
    trainer.is_chief = is_chief
    actions = trainer._actions(None, [], TrainingHistory())
    assert any(isinstance(a, LearningCurvesAction) for a in actions) is is_chief
