"""The Trainer on one device: training, evaluation, checkpoints, resume, divergence, TensorBoard."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from training_helpers import (
    REFERENCE_STEPS,
    causal_batches,
    reference_config,
    reference_data,
    tiny_causal_lm,
)

from kerasllm.testing import interrupt_on_loop
from kerasllm.training import Trainer, TrainerConfig, TrainingDivergedError


def make_trainer(model_dir, steps, model_fn=tiny_causal_lm, **config):
    config.setdefault("verbose", 0)
    return Trainer(
        model_fn,
        "causal_lm",
        TrainerConfig(str(model_dir), steps=steps, **config),
        strategy="one_device",
    )


def weights(trainer):
    return [v.numpy() for v in trainer.model.weights]


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def scalar_series(directory, tag):
    accumulator = EventAccumulator(directory, size_guidance={"tensors": 0})
    accumulator.Reload()
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]


def test_fit_trains_logs_evaluates_and_checkpoints(tmp_path, causal_data):
    def samples(model):
        return ["first sample", "second sample"]

    config = TrainerConfig(
        str(tmp_path),
        steps=12,
        learning_rate=1e-2,
        log_every=3,
        eval_every=4,
        checkpoint_every=6,
        keep_checkpoints=1,
        best_metric="accuracy",
        verbose=0,
    )
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, "one_device", sample_fn=samples)
    before = trainer.evaluate(causal_data)
    history = trainer.fit(causal_data, eval_data=causal_data)
    assert history["step"] == trainer.step == 12
    assert history["eval"]["loss"] < before["loss"] - 0.1
    assert history["eval"]["perplexity"] == pytest.approx(np.exp(history["eval"]["loss"]))
    # keep_checkpoints=1: only the last of ckpt-6 and ckpt-12 remains.
    assert glob.glob(str(tmp_path / "ckpt-*.index")) == [str(tmp_path / "ckpt-12.index")]
    train_dir, eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
    for tag in ("loss", "learning_rate", "gradient_norm"):
        assert [step for step, _ in scalar_series(train_dir, tag)] == [3, 6, 9, 12], tag
    # Throughput leaves out the first loop, which includes tracing.
    for tag in ("tokens_per_second", "steps_per_second"):
        series = scalar_series(train_dir, tag)
        assert [step for step, _ in series] == [6, 9, 12] and min(v for _, v in series) > 0
    learning_rates = [value for _, value in scalar_series(train_dir, "learning_rate")]
    assert learning_rates == pytest.approx([7.5e-3, 5e-3, 2.5e-3, 0.0], abs=1e-7)
    accuracies = scalar_series(eval_dir, "accuracy")
    assert [step for step, _ in accuracies] == [4, 8, 12]
    assert [step for step, _ in scalar_series(eval_dir, "perplexity")] == [4, 8, 12]
    accumulator = EventAccumulator(eval_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    text = accumulator.Tensors("samples")[0].tensor_proto.string_val[0].decode()
    assert "first sample" in text and "second sample" in text
    # The best evaluation's checkpoint is kept apart, with its record.
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    best_step, best_value = max(accuracies, key=lambda item: (item[1], -item[0]))
    assert (best["metric"], best["step"]) == ("accuracy", best_step)
    assert best["value"] == pytest.approx(best_value)
    assert tf.train.latest_checkpoint(str(tmp_path / "best")).endswith(f"ckpt-{best_step}")
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 12


def test_metrics_fn_joins_the_evaluation_and_can_choose_the_best_checkpoint(tmp_path, causal_data):
    scores = iter([1.0, 3.0, 2.0])  # evaluations at steps 4, 8, 12: the best is at 8

    def metrics(model):
        assert isinstance(model, keras.Model)
        return {"score": next(scores)}

    config = TrainerConfig(str(tmp_path), steps=12, eval_every=4, best_metric="score", verbose=0)
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, "one_device", metrics_fn=metrics)
    history = trainer.fit(causal_data, eval_data=causal_data)
    assert history["eval"]["score"] == 2.0 and "loss" in history["eval"]
    assert scalar_series(str(tmp_path / "eval"), "score") == [(4, 1.0), (8, 3.0), (12, 2.0)]
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (best["metric"], best["step"], best["value"]) == ("score", 8, 3.0)

    # A resumed run that chooses by another metric replaces the record at its first evaluation.
    resumed = make_trainer(tmp_path, steps=16, eval_every=4, best_metric="loss")
    resumed.fit(causal_data, eval_data=causal_data)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (best["metric"], best["step"]) == ("loss", 16)

    clashing = Trainer(
        tiny_causal_lm, "causal_lm", config, "one_device", metrics_fn=lambda m: {"loss": 0.0}
    )
    with pytest.raises(ValueError, match=r"metrics_fn returned \['loss'\]"):
        clashing.fit(causal_data, eval_data=causal_data)  # already done: evaluates only


def test_evaluate_matches_a_numpy_computation(tmp_path, causal_data):
    trainer = make_trainer(tmp_path, steps=1)
    metrics = trainer.evaluate(causal_data)
    total_loss = total_correct = total_weight = 0.0
    for x, y, w in causal_data:
        logits = trainer.model(x).numpy().astype("float64")
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        y, w = y.numpy(), w.numpy()
        nll = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
        total_loss += (nll * w).sum()
        total_correct += ((logits.argmax(-1) == y) * w).sum()
        total_weight += w.sum()
    assert metrics["loss"] == pytest.approx(total_loss / total_weight, rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(total_correct / total_weight)


def test_resume_continues_the_step_and_matches_an_uninterrupted_run(tmp_path, reference_weights):
    Trainer(tiny_causal_lm, "causal_lm", reference_config(tmp_path), "one_device").fit(
        reference_data()
    )
    # A crash after the step-4 checkpoint: the step-8 checkpoint never happened.
    for path in glob.glob(str(tmp_path / "ckpt-8.*")):
        os.remove(path)
    state = (tmp_path / "checkpoint").read_text().replace("ckpt-8", "ckpt-4")
    (tmp_path / "checkpoint").write_text(state)

    resumed = Trainer(tiny_causal_lm, "causal_lm", reference_config(tmp_path), "one_device")
    assert resumed.step == 4 and resumed.restored_from.endswith("ckpt-4")
    assert int(resumed._batches_consumed.numpy()) == 4
    assert resumed.fit(reference_data())["step"] == REFERENCE_STEPS
    assert max_difference(weights(resumed), reference_weights) < 1e-6


def test_gradient_accumulation_matches_one_large_batch(tmp_path, reference_weights):
    # Micro-batches of 4 with different amounts of padding: the loss must still be the mean over
    # every real token of the update's 8 examples, not a mean of per-micro-batch means.
    config = reference_config(tmp_path, accumulation_steps=2)
    accumulated = Trainer(tiny_causal_lm, "causal_lm", config, "one_device")
    accumulated.fit(reference_data(batch_size=4))
    assert max_difference(weights(accumulated), reference_weights) < 2e-6


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    data = causal_batches(num_examples=48, batch_size=8)
    poisoned = data.enumerate().map(
        lambda i, b: (b[0], b[1], tf.where(i == 3, np.float32("nan"), b[2]))
    )
    trainer = make_trainer(tmp_path, steps=6, checkpoint_every=2)
    with pytest.raises(TrainingDivergedError, match="NaN or infinite at step 4"):
        trainer.fit(poisoned)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    assert not glob.glob(str(tmp_path / "ckpt-4*"))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(tmp_path, causal_data, precision):
    trainer = make_trainer(tmp_path, steps=4, precision=precision, learning_rate=1e-2)
    assert trainer.model.dtype_policy.name == precision
    assert trainer.model.backbone.blocks[0].compute_dtype == precision.split("_")[1]
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    before = trainer.evaluate(causal_data)["loss"]
    history = trainer.fit(causal_data, causal_data)
    assert all(np.isfinite(w).all() for w in weights(trainer))
    assert history["eval"]["loss"] < before
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone


@pytest.mark.slow  # XLA compilation takes ~10-30 s on 2 CPU cores
def test_xla_matches_the_default_step(tmp_path, causal_data):
    plain = make_trainer(tmp_path / "plain", steps=2, learning_rate=1e-2)
    plain.fit(causal_data)
    compiled = make_trainer(tmp_path / "xla", steps=2, learning_rate=1e-2, jit_compile=True)
    compiled.fit(causal_data)
    assert max_difference(weights(plain), weights(compiled)) < 1e-5


def test_clear_errors(tmp_path, causal_data):
    with pytest.raises(ValueError, match="Unknown objective 'causal'"):
        Trainer(tiny_causal_lm, "causal", TrainerConfig(str(tmp_path), steps=1))
    with pytest.raises(ValueError, match="not created in the scope"):
        Trainer(
            tiny_causal_lm(),
            "causal_lm",
            TrainerConfig(str(tmp_path), steps=1),
            strategy=tf.distribute.MirroredStrategy(["/cpu:0"]),
        )
    with pytest.raises(ValueError, match="dtype policy is 'float32'"):
        make_trainer(tmp_path, steps=1, model_fn=tiny_causal_lm(), precision="mixed_bfloat16")
    trainer = make_trainer(tmp_path, steps=1)
    with pytest.raises(ValueError, match=r"use `\[0\]`"):
        trainer.fit((causal_data, None))


def test_time_budget_stops_early_with_a_checkpoint(tmp_path, causal_data):
    trainer = make_trainer(
        tmp_path, 10_000, max_train_seconds=1e-3, steps_per_loop=2, checkpoint_every=1000
    )
    history = trainer.fit(causal_data)
    # The budget is checked between loops: the first loop runs, then training stops.
    assert 1 <= history["step"] <= 2
    assert trainer.checkpointer.manager.latest_checkpoint.endswith(f"-{history['step']}")
    with pytest.raises(ValueError, match="max_train_seconds"):
        TrainerConfig(str(tmp_path), steps=1, max_train_seconds=0)


def test_time_budget_ends_the_linear_decay(tmp_path, causal_data, monkeypatch):
    # steps=10,000 would keep the learning rate near its peak for the whole run; the budget
    # ends the decay instead, so the run still anneals. A fake clock (0.05 s per reading)
    # makes the outcome independent of the machine's speed and load.
    from kerasllm.training import trainer as trainer_module

    readings = iter(range(10**9))
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: 0.05 * next(readings))
    trainer = make_trainer(
        tmp_path,
        10_000,
        learning_rate=1e-2,
        warmup_steps=0,
        decay="linear",
        max_train_seconds=4,
        steps_per_loop=2,
        checkpoint_every=1000,
    )
    history = trainer.fit(causal_data)
    step = history["step"]
    assert 10 < step < 10_000
    final_rate = float(trainer.optimizer.learning_rate)
    assert final_rate < 0.35e-2, (step, final_rate)
    monkeypatch.undo()
    # The next run without a budget decays over `steps` again.
    trainer.config.max_train_seconds = None
    trainer.config.steps = step + 2
    trainer.fit(causal_data)
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_close_releases_every_traced_graph(tmp_path, causal_data):
    import gc

    from tensorflow.python.eager import context
    from tensorflow.python.framework import func_graph

    names = ("train_loop", "eval_step")
    # Trainers of other tests in this process are never closed: their graphs stay alive.
    gc.collect()
    existing = {id(g) for g in gc.get_objects() if isinstance(g, func_graph.FuncGraph)}

    def live_loop_graphs():
        gc.collect()
        return [
            g for g in gc.get_objects()
            if isinstance(g, func_graph.FuncGraph) and g.name.startswith(names)
            and id(g) not in existing
        ]  # fmt: skip

    functions_before = set(context.context().list_function_names())
    for run in range(2):
        trainer = make_trainer(tmp_path / str(run), steps=2, steps_per_loop=2)
        trainer.fit(causal_data, causal_data.take(1))
        assert live_loop_graphs()  # traced, and alive while the trainer is
        trainer.close()
        del trainer
        # Without close(), each trainer's loop graph stays alive through the gradient functions
        # that tracing tf.distribute's all_reduce registers globally.
        assert live_loop_graphs() == []
        leftover = set(context.context().list_function_names()) - functions_before
        assert not [name for name in leftover if name.startswith(("while", "__inference"))]


def test_interrupt_saves_a_checkpoint_before_stopping(tmp_path, causal_data, monkeypatch):
    trainer = make_trainer(tmp_path, 100, steps_per_loop=3, checkpoint_every=1000)
    monkeypatch.setattr(trainer, "_make_train_loop", interrupt_on_loop(trainer._make_train_loop))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(causal_data)
    assert trainer.checkpointer.manager.latest_checkpoint.endswith("-3")
    resumed = make_trainer(tmp_path, 100)
    assert resumed.step == 3
