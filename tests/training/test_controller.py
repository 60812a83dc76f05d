"""The outer loop and its actions alone, with a fake training loop (no model, no TensorFlow
graph): loop lengths, the order of events, stopping, interrupts, early stopping, the time bound
of one loop, the progress display."""

import io

import pytest

from kerasllm.training.actions import (
    CheckpointAction,
    EarlyStoppingAction,
    TrainingHistory,
    TrainLogAction,
)
from kerasllm.training.controller import Action, Controller, Evaluation, LoopOutput, LoopState
from kerasllm.utils.progress import Progress


class FakeLoop:
    """Counts updates; each call "takes" `seconds_per_step` per update; loss = 1 per update."""

    def __init__(self, seconds_per_step=0.01, interrupt_at_call=None):
        self.step = 0
        self.calls: list[int] = []
        self.seconds_per_step = seconds_per_step
        self.interrupt_at_call = interrupt_at_call

    def __call__(self, num_steps):
        self.calls.append(num_steps)
        if len(self.calls) == self.interrupt_at_call:
            raise KeyboardInterrupt
        self.step += num_steps
        return LoopOutput(num_steps, float(num_steps), 0.0, 0.0, num_steps * self.seconds_per_step)


class Recorder(Action):
    def __init__(self, events, name="", boundary=None):
        self.events, self.name, self.boundary = events, name, boundary

    def on_begin(self, state):
        self.events.append(("begin", state.step))

    def before_loop(self, state):
        self.events.append(("before", state.step))

    def after_loop(self, state, output):
        self.events.append(("after", state.step))

    def after_evaluation(self, state, evaluation):
        self.events.append(("evaluation", evaluation.step, evaluation.epoch))

    def on_loop_end(self, state):
        self.events.append(("loop_end", state.step))

    def on_end(self, state):
        self.events.append(("end", state.step))

    def on_interrupt(self, state):
        self.events.append(("interrupt", state.step))

    def next_boundary(self, step):
        return None if self.boundary is None else (step // self.boundary + 1) * self.boundary


def controller(loop, steps, actions=(), **options):
    return Controller(
        train=loop, current_step=lambda: loop.step, steps=steps, actions=actions,
        steps_per_loop=options.pop("steps_per_loop", 100), **options,
    )  # fmt: skip


def test_calls_end_at_every_boundary_and_evaluations_come_at_eval_every_and_the_end():
    loop, events = FakeLoop(), []
    evaluated = []
    state = controller(
        loop, 10, [Recorder(events, boundary=3)], steps_per_loop=4, eval_every=4,
        evaluate=lambda step: evaluated.append(step) or {"loss": 1.0},
    ).run(0)  # fmt: skip
    # Boundaries: 3 (the action), 4 (eval_every and steps_per_loop), 6, 8, 9, 10.
    assert loop.calls == [3, 1, 2, 2, 1, 1]
    assert state.step == 10 and state.stop_reason is None
    assert evaluated == [4, 8, 10]
    assert [e for e in events if e[0] == "evaluation"] == [
        ("evaluation", 4, 0), ("evaluation", 8, 1), ("evaluation", 10, 2),
    ]  # fmt: skip
    # The final checkpoint hook comes before the last evaluation, `on_end` after it.
    assert events[-3:] == [("loop_end", 10), ("evaluation", 10, 2), ("end", 10)]


def test_the_evaluation_logs_are_named_like_keras():
    loop, seen = FakeLoop(), []

    class Catch(Action):
        def after_evaluation(self, state, evaluation):
            seen.append(evaluation)

    controller(
        loop, 4, [Catch()], eval_every=2, evaluate=lambda step: {"loss": 3.0, "accuracy": 0.5}
    ).run(0)
    assert [e.logs["step"] for e in seen] == [2, 4]
    assert seen[0].logs["loss"] == 1.0  # the period's mean training loss
    assert seen[0].logs["val_loss"] == 3.0 and seen[0].logs["val_accuracy"] == 0.5
    assert seen[0].metrics == {"loss": 3.0, "accuracy": 0.5}
    # Without evaluation data the periods still end, with the training metrics only.
    seen.clear()
    controller(FakeLoop(), 4, [Catch()], eval_every=2).run(0)
    names = ["gradient_norm", "loss", "step", "steps_per_second", "tokens_per_second"]
    assert [sorted(e.logs) for e in seen] == [names] * 2


def test_a_resumed_run_continues_the_epoch_numbers():
    loop, events = FakeLoop(), []
    loop.step = 8
    controller(loop, 12, [Recorder(events)], eval_every=4, evaluate=lambda s: {}).run(8)
    assert [e for e in events if e[0] == "evaluation"] == [("evaluation", 12, 2)]


def test_one_loop_lasts_about_seconds_per_loop_so_an_interrupt_waits_no_longer():
    # 0.1 s per update: after the first call (which measures the rate), calls of at most
    # 2 s / 0.1 s = 20 updates instead of steps_per_loop=50.
    loop = FakeLoop(seconds_per_step=0.1)
    controller(loop, 1000, steps_per_loop=50, seconds_per_loop=2.0).run(0)
    assert loop.calls[0] == 50 and set(loop.calls[1:-1]) == {20} and sum(loop.calls) == 1000
    # A loop slower than the bound still runs one update per call.
    loop = FakeLoop(seconds_per_step=5.0)
    controller(loop, 10, steps_per_loop=2, seconds_per_loop=2.0).run(0)
    assert loop.calls == [2] + [1] * 8
    # None: only steps_per_loop.
    loop = FakeLoop(seconds_per_step=0.1)
    controller(loop, 100, steps_per_loop=50, seconds_per_loop=None).run(0)
    assert loop.calls == [50, 50]


def test_an_interrupt_runs_on_interrupt_then_propagates():
    loop, events = FakeLoop(interrupt_at_call=3), []
    with pytest.raises(KeyboardInterrupt):
        controller(loop, 100, [Recorder(events)], steps_per_loop=5).run(0)
    assert events[-1] == ("interrupt", 10) and ("end", 10) not in events


class FakeCheckpointer:
    def __init__(self):
        self.saved = []

    def save(self, step):
        self.saved.append(step)


def test_checkpoints_every_n_at_the_end_and_on_interrupt():
    checkpointer, lines = FakeCheckpointer(), []
    action = CheckpointAction(checkpointer, every=4, log=lines.append)
    controller(FakeLoop(), 10, [action], steps_per_loop=3).run(0)
    assert checkpointer.saved == [4, 8, 10]

    # Calls end at 3, 5 (saved), 8; the fourth call is interrupted.
    checkpointer = FakeCheckpointer()
    action = CheckpointAction(checkpointer, every=5, log=lines.append)
    with pytest.raises(KeyboardInterrupt):
        controller(FakeLoop(interrupt_at_call=4), 100, [action], steps_per_loop=3).run(0)
    assert checkpointer.saved == [5, 8] and "saved a checkpoint at step 8" in lines[-1]


def evaluation(step, value, name="val_loss"):
    return Evaluation(step, step - 1, {"loss": value}, {name: value, "step": step})


def test_early_stopping_counts_evaluations_without_improvement():
    lines = []
    action = EarlyStoppingAction(
        "val_loss", patience=2, min_delta=0.1, mode="min", log=lines.append
    )
    state = LoopState(start=0, steps=100, step=0)
    # 1.0 best; 0.95 is not better by more than 0.1; 0.5 is; then two without improvement.
    for step, value in enumerate([1.0, 0.95, 0.5, 0.45, float("nan")], start=1):
        state.step = step
        action.after_evaluation(state, evaluation(step, value))
        assert (state.stop_reason is not None) == (step == 5), step
    assert (action.best, action.best_step, action.stopped_step) == (0.5, 3, 5)
    assert "Early stopping at step 5: val_loss" in lines[0] and "0.5 at step 3" in lines[0]

    maximize = EarlyStoppingAction("val_accuracy", patience=1, mode="max", log=lines.append)
    state = LoopState(start=0, steps=100, step=2)
    maximize.after_evaluation(state, evaluation(1, 0.5, "val_accuracy"))
    maximize.after_evaluation(state, evaluation(2, 0.4, "val_accuracy"))
    assert state.stop_reason == "early_stopping"

    with pytest.raises(ValueError, match=r"early_stopping_metric='val_f1' .*available: \['step'"):
        EarlyStoppingAction("val_f1", patience=1).after_evaluation(
            state, Evaluation(1, 0, {}, {"step": 1})
        )


def test_training_history_is_a_keras_history_and_the_old_summary():
    import keras

    history = TrainingHistory(step=3)
    history.eval = {"loss": 1.0}
    assert isinstance(history, keras.callbacks.History)
    assert history["step"] == 3 and history.get("eval") == {"loss": 1.0}
    assert dict(history) == {"step": 3, "train": {}, "eval": {"loss": 1.0}}
    with pytest.raises(KeyError):
        history["test"]
    assert len({history, TrainingHistory(step=3)}) == 2  # hashable, compared by identity


def test_train_logs_go_to_tensorboard_at_log_every_and_to_the_progress_display():
    written, lines = [], []

    class Summaries:
        def scalars(self, split, values, step):
            written.append((split, step, dict(values)))

    out = io.StringIO()
    progress = Progress(6, stream=out, dynamic=False, interval=0)
    action = TrainLogAction(4, 6, lambda w: w.means(), Summaries(), progress=progress)
    controller(FakeLoop(), 6, [action], steps_per_loop=2).run(0)
    assert [(split, step) for split, step, _ in written] == [("train", 4), ("train", 6)]
    assert action.last["loss"] == 1.0
    text = out.getvalue()
    assert [line.split()[1] for line in text.splitlines()] == ["0/6", "2/6", "4/6", "6/6"]
    # verbose=2: one printed line per log interval instead.
    loss_only = lambda window: {"loss": window.means()["loss"]}  # noqa: E731
    action = TrainLogAction(4, 6, loss_only, Summaries(), log=lines.append)
    controller(FakeLoop(), 6, [action], steps_per_loop=2).run(0)
    assert lines == ["step 4: loss=1", "step 6: loss=1"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_refreshes_by_time_not_by_update():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(1000, stream=out, dynamic=False, interval=15.0, clock=clock)
    for step in range(1, 1001):  # 1000 updates over 100 s: a line at 0 s, 15 s, 30 s, ...
        clock.now = step * 0.1
        progress.update(step, {"loss": 1.0 / step})
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8  # 0.1, 15.1, ..., 90.1 s and the last update
    assert lines[-1].startswith("step 1000/1000 [====================] 100% loss=")
    assert "ETA 1:25" in lines[1]  # 849 steps left at 150 steps per 15 s


def test_progress_plain_lines_have_no_control_characters_and_a_terminal_gets_one_line():
    clock, plain = FakeClock(), io.StringIO()
    progress = Progress(10, stream=plain, dynamic=False, interval=1.0, clock=clock)
    for step in range(1, 11):
        clock.now = step / 10  # the display measures the same 10 steps per second
        progress.update(step, {"loss": 0.5})
        if step == 5:
            progress.message("step 5 eval: loss=0.4")
    progress.close()
    text = plain.getvalue()
    assert not set(text) & {"\r", "\b", "\x1b"}
    assert "step 5 eval: loss=0.4\n" in text

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    clock, terminal = FakeClock(), Terminal()
    progress = Progress(10, stream=terminal, clock=clock)
    assert progress.dynamic and progress.interval == 2.0
    for step in range(1, 11):
        clock.now = step * 0.5
        progress.update(step, {"loss": 0.5})
    progress.close()
    text = terminal.getvalue()
    assert "\x1b" not in text and "\b" not in text
    # Refreshed at 0.5, 2.5 and 4.5 s (every 2 s), and by close (the last update).
    assert text.count("\r") == 4 and text.count("\n") == 1 and text.endswith("\n")
    assert text.rstrip("\n").rsplit("\r", 1)[1].startswith("step 10/10")


def test_a_time_budget_moves_the_displayed_time_left_to_where_it_runs_out(monkeypatch):
    import tensorflow as tf

    from kerasllm.training import actions

    seconds = iter(range(10**6))
    monkeypatch.setattr(actions.time, "perf_counter", lambda: float(next(seconds)))
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(100_000, stream=out, dynamic=False, interval=0, clock=clock)
    budget = actions.TimeBudgetAction(
        100, 100_000, tf.Variable(0.0), log=lambda line: None, progress=progress
    )
    budget.on_begin(LoopState(start=0, step=0, steps=100_000))
    for step in (0, 10, 20):  # one clock second per check: 10 steps per second
        state = LoopState(start=0, step=step, steps=100_000)
        budget.before_loop(state)
        clock.now = step / 10  # the display measures the same 10 steps per second
        progress.update(step)
    # 20 steps done at the third second; 97 seconds left -> last step 990: the ETA counts to
    # there, not to the 100,000 configured steps.
    assert budget.budget.last_step == pytest.approx(990.0)
    assert "ETA 1:37" in progress.line(clock.now)
