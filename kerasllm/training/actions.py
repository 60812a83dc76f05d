"""The `Action`s of the trainer's outer loop (`kerasllm.training.controller`), one concern each:
time budget, profiler, training logs and progress, checkpoints, the best checkpoint, early
stopping, Keras callbacks and the learning-curves picture; and `TrainingHistory`, what
`Trainer.fit` returns.

Each takes what it works on as arguments (a `Checkpointer`, a `SummaryWriter`, a function that
prints), so that it can be tested without a trainer.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import keras
import tensorflow as tf

from kerasllm.training.checkpointing import Checkpointer
from kerasllm.training.controller import Action, Evaluation, LoopOutput, LoopState, Window
from kerasllm.training.summaries import SummaryWriter
from kerasllm.utils.files import atomic_path
from kerasllm.utils.progress import Progress

Log = Callable[[str], None]


class TimeBudget:
    """Tracks `max_train_seconds` during `fit`: whether it is spent, and the step at which it
    will run out (`last_step`, where linear and cosine decay end, so that a time-budgeted run
    still anneals its learning rate; Li et al. 2020, "Budgeted training").

    The step rate is measured from the end of the first training loop, which includes tracing.
    `clock(seconds)` makes the elapsed time the same on every worker.
    """

    def __init__(
        self, seconds: float | None, start: int, steps: int, clock: Callable[[float], float]
    ):
        self.seconds = seconds
        self.last_step = float(steps)
        self._start = start
        self._steps = steps
        self._clock = clock
        self._began = time.perf_counter()
        self._origin: tuple[float, int] | None = None  # (elapsed, step) after the first loop

    def spent(self, step: int) -> bool:
        """Whether the budget is spent at `step`; if not, also updates `last_step`."""
        if self.seconds is None:
            return False
        elapsed = self._clock(time.perf_counter() - self._began)
        if elapsed >= self.seconds:
            return True
        if self._origin is None:
            if step > self._start:
                self._origin = (elapsed, step)
        elif elapsed > self._origin[0] and step > self._origin[1]:
            rate = (step - self._origin[1]) / (elapsed - self._origin[0])
            self.last_step = float(min(self._steps, step + (self.seconds - elapsed) * rate))
        return False


class TimeBudgetAction(Action):
    """Stops training once `seconds` have passed (checked before each training-loop call), and
    keeps `decay_end` (where linear and cosine decay end) at the step the budget is expected
    to run out, or at `steps` without a budget.

    Args:
        seconds: the budget (`max_train_seconds`), or None.
        steps: the run's last step.
        decay_end: the optimizer schedule's variable.
        clock: `clock(seconds)`, the same on every worker.
        log: prints a line.
        progress: the progress display, or None; its time left is counted to the step where
            the budget is expected to run out.
    """

    def __init__(
        self,
        seconds: float | None,
        steps: int,
        decay_end: tf.Variable,
        clock: Callable[[float], float] = float,
        log: Log = print,
        progress: Progress | None = None,
    ):
        self.seconds = seconds
        self.steps = steps
        self.decay_end = decay_end
        self.clock = clock
        self.log = log
        self.progress = progress
        self.budget: TimeBudget | None = None

    def on_begin(self, state: LoopState) -> None:
        self.decay_end.assign(float(self.steps))
        self.budget = TimeBudget(self.seconds, state.start, self.steps, self.clock)

    def before_loop(self, state: LoopState) -> None:
        if self.budget.spent(state.step):
            self.log(f"Time budget of {self.seconds:.0f} s reached at step {state.step}.")
            state.stop("time_budget")
            return
        self.decay_end.assign(self.budget.last_step)
        if self.progress is not None and self.seconds is not None:
            self.progress.expect_end(math.ceil(self.budget.last_step))


class ProfilerAction(Action):
    """Records a TensorBoard profiler trace from update `first` to update `last`."""

    def __init__(self, summaries: SummaryWriter, profile_steps: tuple[int, int]):
        self.summaries = summaries
        self.first, self.last = profile_steps

    def before_loop(self, state: LoopState) -> None:
        if state.step == self.first:
            self.summaries.start_profiler()

    def after_loop(self, state: LoopState, output: LoopOutput) -> None:
        if state.step == self.last:
            self.summaries.stop_profiler()

    def next_boundary(self, step: int) -> int | None:
        later = [b for b in (self.first, self.last) if b > step]
        return min(later) if later else None


class TrainLogAction(Action):
    """Training metrics averaged over `every` updates (and at the last step): written to
    TensorBoard, shown by `progress` (verbose=1) or printed as one line (verbose=2).

    Between those points the progress display still moves with the step and the running means,
    refreshed by time (see `kerasllm.utils.progress`).

    Args:
        every: `log_every`.
        steps: the run's last step.
        metrics: `metrics(window) -> {name: value}` of a window of updates.
        summaries: the TensorBoard writer.
        progress: the progress display, or None.
        log: prints a line (verbose=2), or None.

    Attributes:
        last: the metrics of the last logged window (empty before the first).
    """

    # The progress display's short names for the metrics it shows.
    SHOWN = {
        "loss": "loss",
        "learning_rate": "lr",
        "gradient_norm": "grad_norm",
        "tokens_per_second": "tokens/s",
    }

    def __init__(
        self,
        every: int,
        steps: int,
        metrics: Callable[[Window], dict],
        summaries: SummaryWriter,
        progress: Progress | None = None,
        log: Log | None = None,
    ):
        self.every = every
        self.steps = steps
        self.metrics = metrics
        self.summaries = summaries
        self.progress = progress
        self.log = log
        self.window = Window()
        self.last: dict = {}

    def on_begin(self, state: LoopState) -> None:
        self.window.reset()
        if self.progress is not None:
            self.progress.update(state.step)

    def after_loop(self, state: LoopState, output: LoopOutput) -> None:
        self.window.add(output)
        step = state.step
        if step % self.every == 0 or step >= self.steps:
            self.last = self.metrics(self.window)
            self.window.reset()
            self.summaries.scalars("train", self.last, step)
            self._show(step, self.last)
            if self.progress is None and self.log is not None:
                self.log(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in self.last.items()))
        elif self.progress is not None:
            self._show(step, self.metrics(self.window))

    def _show(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.progress is not None:
            shown = {short: metrics[name] for name, short in self.SHOWN.items() if name in metrics}
            self.progress.update(step, shown)

    def next_boundary(self, step: int) -> int | None:
        return (step // self.every + 1) * self.every

    def on_end(self, state: LoopState) -> None:
        if self.progress is not None:
            self.progress.close()

    on_interrupt = on_end


class CheckpointAction(Action):
    """Saves a checkpoint every `every` updates, when training stops, and on an interrupt.

    Args:
        checkpointer: the run's `Checkpointer`.
        every: `checkpoint_every`.
        log: prints a line (the interrupt's message).
    """

    def __init__(self, checkpointer: Checkpointer, every: int, log: Log = print):
        self.checkpointer = checkpointer
        self.every = every
        self.log = log
        self.last_saved: int | None = None

    def on_begin(self, state: LoopState) -> None:
        self.last_saved = state.start

    def after_loop(self, state: LoopState, output: LoopOutput) -> None:
        if state.step % self.every == 0:
            self._save(state.step)

    def on_loop_end(self, state: LoopState) -> None:
        if state.step != self.last_saved:
            self._save(state.step)

    def on_interrupt(self, state: LoopState) -> None:
        # Ctrl-C (or SIGTERM turned into it by the CLI) keeps the work done so far: the step
        # variable and the weights are consistent between training-loop calls.
        if state.step != self.last_saved:
            self._save(state.step)
            self.log(f"Interrupted: saved a checkpoint at step {state.step}; rerun to resume.")

    def next_boundary(self, step: int) -> int | None:
        return (step // self.every + 1) * self.every

    def _save(self, step: int) -> None:
        self.checkpointer.save(step)
        self.last_saved = step


class BestCheckpointAction(Action):
    """Copies the state to `model_dir/best` at each evaluation that improves `metric` (an
    evaluation metric as the objective names it, e.g. "accuracy"), with its record.

    Args:
        checkpointer: the run's `Checkpointer`.
        metric: `best_metric`.
        mode: "min" or "max".
        objective: the objective's name, for the error message.
        log: prints a line.
    """

    def __init__(
        self, checkpointer: Checkpointer, metric: str, mode: str, objective: str, log: Log = print
    ):
        self.checkpointer = checkpointer
        self.metric = metric
        self.mode = mode
        self.objective = objective
        self.log = log

    def after_evaluation(self, state: LoopState, evaluation: Evaluation) -> None:
        metrics = evaluation.metrics
        if not metrics:  # no evaluation data
            return
        metric = self.metric
        if metric not in metrics:
            raise ValueError(
                f"best_metric={metric!r} is not an evaluation metric of {self.objective}; "
                f"available: {sorted(metrics)}."
            )
        value = float(metrics[metric])
        record = self.checkpointer.best_record()
        if record is not None and record["metric"] != metric:
            self.log(
                f"The best checkpoint so far was chosen by {record['metric']!r}; best_metric is "
                f"now {metric!r}, so this evaluation replaces it."
            )
            record = None
        better = record is None or (
            value < record["value"] if self.mode == "min" else value > record["value"]
        )
        if better and math.isfinite(value):
            self.checkpointer.save_best(evaluation.step, metric, value)


class EarlyStoppingAction(Action):
    """Stops training once `metric` has not improved by more than `min_delta` for `patience`
    evaluations in a row (a NaN never improves). The checkpoint of the stop step is then saved
    as at any end of training; the best weights are those in `model_dir/best` when
    `best_metric` names the same evaluation metric.

    Args:
        metric: a name in the evaluation logs ("val_loss", "val_accuracy", "loss", ...).
        patience: evaluations without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: "min" or "max".
        log: prints a line.

    Attributes:
        best, best_step: the best value so far and the step it was reached at.
        wait: evaluations since the last improvement.
        stopped_step: the step training stopped at, or None.
    """

    def __init__(
        self, metric: str, patience: int, min_delta: float = 0.0, mode: str = "min",
        log: Log = print,
    ):  # fmt: skip
        self.metric = metric
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = mode
        self.log = log
        self.on_begin(None)

    def on_begin(self, state: LoopState | None) -> None:
        self.best: float | None = None
        self.best_step: int | None = None
        self.wait = 0
        self.stopped_step: int | None = None

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def after_evaluation(self, state: LoopState, evaluation: Evaluation) -> None:
        if self.metric not in evaluation.logs:
            hint = "" if evaluation.metrics else " (fit got no eval_data: no val_ metrics)"
            raise ValueError(
                f"early_stopping_metric={self.metric!r} is not in the evaluation logs{hint}; "
                f"available: {sorted(evaluation.logs)}."
            )
        value = float(evaluation.logs[self.metric])
        if self._improves(value):
            self.best, self.best_step, self.wait = value, evaluation.step, 0
            return
        self.wait += 1
        if self.wait >= self.patience and state.step < state.steps:
            self.stopped_step = evaluation.step
            state.stop("early_stopping")
            best = "none" if self.best is None else f"{self.best:.4g} at step {self.best_step}"
            self.log(
                f"Early stopping at step {evaluation.step}: {self.metric} has not improved by "
                f"more than {self.min_delta:g} in {self.wait} evaluation(s) (best {best})."
            )


def _overrides(callback: keras.callbacks.Callback, hook: str) -> bool:
    """Whether `callback` does something at `hook` (its class overrides it, or, as in
    `LambdaCallback`, the instance sets it)."""
    method = getattr(callback, hook)
    return getattr(method, "__func__", method) is not getattr(keras.callbacks.Callback, hook)


class KerasCallbacksAction(Action):
    """Runs `keras.callbacks.Callback`s at the points Keras' `fit` defines, with one evaluation
    period as an epoch:

    - `on_train_begin` / `on_train_end` (after the final checkpoint and evaluation);
    - `on_epoch_begin(epoch)` / `on_epoch_end(epoch, logs)` around each evaluation period, with
      the `Evaluation.logs` ("loss", "learning_rate", "gradient_norm", "val_loss", ...,
      "step");
    - `on_train_batch_begin` / `on_train_batch_end(batch, {"loss": ...})` once per
      training-loop call (`batch`: the index in the epoch of its first / last update; the
      loss is the call's mean), only when a callback defines them.

    A callback that sets `model.stop_training = True` ends training after the current call
    or evaluation; the checkpoint is saved as at any end of training.

    Args:
        callbacks: the callbacks (a `History` among them records each epoch).
        model: the model they get with `set_model`.
        params: what they get with `set_params` ("epochs", "steps", "verbose").
    """

    def __init__(
        self,
        callbacks: Sequence[keras.callbacks.Callback],
        model: keras.Model,
        params: Mapping | None = None,
    ):
        for callback in callbacks:
            if not isinstance(callback, keras.callbacks.Callback):
                raise TypeError(
                    "`callbacks` must be keras.callbacks.Callback instances; got "
                    f"{type(callback).__name__}."
                )
        self.model = model
        self.callbacks = keras.callbacks.CallbackList(
            list(callbacks), model=model, **dict(params or {})
        )
        listed = self.callbacks.callbacks
        self._batch_begin = any(_overrides(c, "on_train_batch_begin") for c in listed)
        self._batch_end = any(_overrides(c, "on_train_batch_end") for c in listed)
        self._logs: dict = {}

    def _first_update_of_epoch(self, state: LoopState, epoch: int) -> int:
        return epoch * state.eval_every + 1 if state.eval_every else 1

    def on_begin(self, state: LoopState) -> None:
        self.model.stop_training = False
        self.callbacks.on_train_begin()
        self.callbacks.on_epoch_begin(state.epoch)

    def before_loop(self, state: LoopState) -> None:
        if self._batch_begin:
            first = self._first_update_of_epoch(state, state.epoch)
            self.callbacks.on_train_batch_begin(state.step + 1 - first)

    def after_loop(self, state: LoopState, output: LoopOutput) -> None:
        if self._batch_end:
            first = self._first_update_of_epoch(state, state.epoch_of(state.step))
            loss = output.loss_sum / max(output.steps, 1)
            self.callbacks.on_train_batch_end(state.step - first, {"loss": loss})
        self._check_stop(state)

    def after_evaluation(self, state: LoopState, evaluation: Evaluation) -> None:
        self._logs = dict(evaluation.logs)
        self.callbacks.on_epoch_end(evaluation.epoch, dict(evaluation.logs))
        self._check_stop(state)
        if state.stop_reason is None and state.step < state.steps:
            self.callbacks.on_epoch_begin(state.epoch)

    def on_end(self, state: LoopState) -> None:
        self.callbacks.on_train_end(dict(self._logs))

    def _check_stop(self, state: LoopState) -> None:
        if getattr(self.model, "stop_training", False):
            state.stop("callback")


class TrainingHistory(keras.callbacks.History, Mapping):
    """What `Trainer.fit` returns: a Keras `History` of the evaluation periods, and the final
    summary that `fit` returned before it existed.

    As a Keras `History`: `history.history` maps each logged name ("loss", "learning_rate",
    "gradient_norm", "val_loss", "val_accuracy", ..., "step") to a list with one value per
    evaluation period of this `fit` call, and `history.epoch` lists their indices.

    As a read-only mapping (unchanged for earlier callers): `history["step"]`, the step training
    ended at; `history["train"]`, the last logged training metrics; `history["eval"]`, the last
    evaluation's metrics (empty without evaluation data). `dict(history)` copies them.

    Attributes:
        step, train, eval: the same as the mapping's items.
        stop_reason: why training ended before `config.steps`: "time_budget",
            "early_stopping", "callback", or None.
    """

    _KEYS = ("step", "train", "eval")

    def __init__(self, step: int = 0):
        super().__init__()
        self.epoch: list[int] = []
        self.step = step
        self.train: dict = {}
        self.eval: dict = {}
        self.stop_reason: str | None = None

    def __getitem__(self, key: str):
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    # Mapping's content equality would make two runs with the same results "equal" and the
    # object unhashable; as a Keras callback it stays an identity-compared object.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return (
            f"TrainingHistory(step={self.step}, epochs={len(self.epoch)}, "
            f"eval={self.eval}, stop_reason={self.stop_reason!r})"
        )


#: The picture `LearningCurvesAction` writes into the model directory.
LEARNING_CURVES_FILENAME = "learning_curves.png"


class LearningCurvesAction(Action):
    """Writes `learning_curves.png` (into `directory`, atomically) at the end of training: the
    training loss (the mean of each evaluation period) and, with evaluation data, the
    validation loss against the step, and the other validation metrics ("val_accuracy", ...)
    in a second panel.

    The picture is written only when the run had at least two evaluation periods (a curve
    needs two points): with `eval_every` unset the whole run is one period and no picture is
    written. Without evaluation data it shows the training loss alone. It covers the periods
    of this `fit` call (a resumed run draws from where it resumed); TensorBoard keeps the
    whole run. Not written on an interrupt (Ctrl-C stops promptly).

    Args:
        directory: where to write (the model directory).
        log: prints a line.

    Attributes:
        points: the `Evaluation.logs` of each period so far.
        path: the picture's path once written, else None.
    """

    def __init__(self, directory: str, log: Log = print):
        self.directory = directory
        self.log = log
        self.points: list[dict] = []
        self.path: str | None = None

    def on_begin(self, state: LoopState) -> None:
        self.points = []
        self.path = None

    def after_evaluation(self, state: LoopState, evaluation: Evaluation) -> None:
        self.points.append(dict(evaluation.logs))

    def on_end(self, state: LoopState) -> None:
        if len(self.points) < 2:
            return
        path = os.path.join(self.directory, LEARNING_CURVES_FILENAME)
        figure = plot_learning_curves(
            self.points, title=os.path.basename(os.path.normpath(self.directory))
        )
        with atomic_path(path) as temporary:
            # format="png": the temporary name ends in ".tmp".
            figure.savefig(temporary, format="png", dpi=100)
        self.path = path
        self.log(f"Learning curves: {path}")


def plot_learning_curves(points: Sequence[Mapping], title: str = ""):
    """A matplotlib `Figure` of evaluation-period logs (`Evaluation.logs` or Keras `History`
    rows with a "step"): losses in the first panel, other validation metrics in a second.

    Built on `matplotlib.figure.Figure` with the Agg canvas, never `pyplot`: no window, no
    global backend, safe without a display and in threads.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [point.get("step", i + 1) for i, point in enumerate(points)]

    def series(name: str) -> tuple[list, list]:
        pairs = [(step, _number(point.get(name))) for step, point in zip(steps, points)]
        pairs = [(step, value) for step, value in pairs if value is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    names = sorted({name for point in points for name in point})
    metrics = [n for n in names if n.startswith("val_") and n != "val_loss"]
    figure = Figure(figsize=(10 if metrics else 6, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    for name, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        x, y = series(name)
        if x:
            axes[0].plot(x, y, marker="o", markersize=3, label=label)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].set_title(f"{title}: loss" if title else "loss")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    if metrics:
        for name in metrics:
            x, y = series(name)
            if x:
                axes[1].plot(x, y, marker="o", markersize=3, label=name[len("val_") :])
        axes[1].set_xlabel("step")
        axes[1].set_title("validation metrics")
        axes[1].legend()
        axes[1].grid(alpha=0.3)
    return figure


def _number(value) -> float | None:
    """`value` as a finite float, or None (absent, NaN, or not a number: nothing to draw)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
