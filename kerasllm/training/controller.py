"""The trainer's outer loop: a `Controller` that runs the training loop in calls of several
updates and, between them, evaluates and hands the results to `Action`s.

This follows the shape of TF Model Garden's orbit: the inner loop (one `tf.function` call of up
to `steps_per_loop` updates, `Trainer._make_train_loop`) knows nothing of what happens between
calls, and each host-side concern (time budget, profiler, logging, checkpoints, the best
checkpoint, early stopping, Keras callbacks; `kerasllm.training.actions`) is one small `Action`
that can be built and tested on its own. The controller only decides how many updates the next
call runs and when an evaluation period ends.

Order of events in `Controller.run`:
1. `on_begin` of every action;
2. until `steps` updates are done or an action asked to stop: `before_loop` of every action (a
   spent time budget stops here), one training-loop call, `after_loop` of every action, and at
   every multiple of `eval_every` an evaluation: the evaluator, then `after_evaluation` of
   every action;
3. `on_loop_end` of every action (the final checkpoint), a final evaluation unless the last
   step was just evaluated, then `on_end` of every action (Keras' `on_train_end`).
On `KeyboardInterrupt` (Ctrl-C, or SIGTERM in the command-line tools) every action's
`on_interrupt` runs (the checkpoint is saved there) and the interrupt propagates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence


@dataclasses.dataclass
class LoopOutput:
    """What one training-loop call did, as host numbers.

    Attributes:
        steps: updates run by the call.
        loss_sum: the sum of their training losses.
        norm_sum: the sum of their gradient norms (before clipping).
        tokens: tokens (or examples) they consumed.
        seconds: wall-clock time of the call.
        timed: False for a call that traced the loop (left out of throughput figures).
    """

    steps: int
    loss_sum: float
    norm_sum: float
    tokens: float
    seconds: float
    timed: bool = True


class Window:
    """Sums of `LoopOutput`s since the last `reset`: mean loss and gradient norm, throughput."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.steps = self.timed_steps = 0
        self.loss = self.norm = self.tokens = self.seconds = 0.0

    def add(self, output: LoopOutput) -> None:
        self.steps += output.steps
        self.loss += output.loss_sum
        self.norm += output.norm_sum
        if output.timed:
            self.timed_steps += output.steps
            self.tokens += output.tokens
            self.seconds += output.seconds

    def means(self) -> dict[str, float]:
        """`loss` and `gradient_norm` averaged over the window's updates, and
        `tokens_per_second` and `steps_per_second` once a timed call is in it."""
        steps = max(self.steps, 1)
        metrics = {"loss": self.loss / steps, "gradient_norm": self.norm / steps}
        if self.timed_steps and self.seconds > 0:
            metrics["tokens_per_second"] = self.tokens / self.seconds
            metrics["steps_per_second"] = self.timed_steps / self.seconds
        return metrics


@dataclasses.dataclass
class LoopState:
    """Where the outer loop stands; actions read it and may ask it to stop.

    Attributes:
        start: the step `run` started from (a resumed run starts above 0).
        steps: the step at which training ends.
        step: updates done so far.
        eval_every: updates per evaluation period (None: the whole run is one).
        last_evaluation: the step of the last evaluation (`start` before the first).
        stop_reason: why training stops before `steps` ("time_budget", "early_stopping",
            "callback"), or None.
    """

    start: int
    steps: int
    step: int
    eval_every: int | None = None
    last_evaluation: int = 0
    stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        """Asks the controller to stop after the current action (the first reason is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def epoch_of(self, step: int) -> int:
        """The evaluation period (Keras' "epoch", from 0) that update number `step` is in."""
        return (max(step, 1) - 1) // self.eval_every if self.eval_every else 0

    @property
    def epoch(self) -> int:
        """The evaluation period the next update belongs to."""
        return self.epoch_of(self.step + 1)


@dataclasses.dataclass
class Evaluation:
    """The end of one evaluation period.

    Attributes:
        step: the step it ended at.
        epoch: its index (Keras' epoch number).
        metrics: the evaluation metrics as the objective names them ("loss", "accuracy", ...);
            empty when `fit` got no evaluation data.
        logs: what Keras callbacks get: the period's training means ("loss", "learning_rate",
            "gradient_norm", throughput), the evaluation metrics prefixed "val_", and "step".
    """

    step: int
    epoch: int
    metrics: dict
    logs: dict


class Action:
    """One concern of the outer loop. Every hook does nothing by default."""

    def on_begin(self, state: LoopState) -> None:
        """Before the first training-loop call."""

    def before_loop(self, state: LoopState) -> None:
        """Before each training-loop call; `state.stop(...)` skips it and ends training."""

    def after_loop(self, state: LoopState, output: LoopOutput) -> None:
        """After each training-loop call (`state.step` is already updated)."""

    def after_evaluation(self, state: LoopState, evaluation: Evaluation) -> None:
        """At the end of each evaluation period."""

    def on_loop_end(self, state: LoopState) -> None:
        """When training stops (steps reached or stopped early), before the final evaluation."""

    def on_end(self, state: LoopState) -> None:
        """After the final evaluation."""

    def on_interrupt(self, state: LoopState) -> None:
        """On `KeyboardInterrupt`, before it propagates."""

    def next_boundary(self, step: int) -> int | None:
        """The next step at which a training-loop call must end for this action (e.g. its
        logging interval), or None."""
        return None


class Controller:
    """Runs training-loop calls until `steps`, evaluating every `eval_every` updates and at the
    end, and calls its actions in between (see the module's docstring for the order).

    Args:
        train: `train(num_steps) -> LoopOutput`: runs one training-loop call.
        current_step: reads the step counter (after a call, or after an interrupt).
        steps: the step at which training ends.
        steps_per_loop: most updates per call.
        seconds_per_loop: about the longest a call may run: the next call runs no more updates
            than fit in this many seconds at the last call's rate; None: no limit.
        eval_every: updates per evaluation period; None: one period, ending with training.
        evaluate: `evaluate(step) -> metrics` of the evaluation data, or None when there is
            none (the periods still end, with training metrics only).
        train_logs: `train_logs(window) -> metrics` of the training updates of a period (the
            trainer adds the learning rate to `Window.means`).
        actions: the `Action`s, called in this order.
        agree: `agree(seconds) -> seconds` the same on every worker, so that every worker runs
            calls of the same length (collectives inside the loop must match).
    """

    def __init__(
        self,
        *,
        train: Callable[[int], LoopOutput],
        current_step: Callable[[], int],
        steps: int,
        steps_per_loop: int,
        seconds_per_loop: float | None = None,
        eval_every: int | None = None,
        evaluate: Callable[[int], dict] | None = None,
        train_logs: Callable[[Window], dict] = Window.means,
        actions: Sequence[Action] = (),
        agree: Callable[[float], float] = float,
    ):
        self.train = train
        self.current_step = current_step
        self.steps = steps
        self.steps_per_loop = steps_per_loop
        self.seconds_per_loop = seconds_per_loop
        self.eval_every = eval_every
        self.evaluate = evaluate
        self.train_logs = train_logs
        self.actions = tuple(actions)
        self.agree = agree
        self._rate: float | None = None  # updates per second of the last call
        self._period = Window()

    def loop_length(self, step: int) -> int:
        """Updates in the next call: up to the nearest boundary (end of training, evaluation,
        an action's interval), `steps_per_loop`, and what fits in `seconds_per_loop`."""
        limits = [self.steps - step, self.steps_per_loop]
        if self.eval_every:
            limits.append((step // self.eval_every + 1) * self.eval_every - step)
        for action in self.actions:
            boundary = action.next_boundary(step)
            if boundary is not None and boundary > step:
                limits.append(boundary - step)
        if self.seconds_per_loop is not None and self._rate is not None:
            limits.append(int(self.seconds_per_loop * self._rate))
        return max(1, min(limits))

    def run(self, start: int) -> LoopState:
        """Trains from step `start`; returns the final state (`stop_reason` says why it ended
        before `steps`, if it did)."""
        state = LoopState(
            start=start, steps=self.steps, step=start, eval_every=self.eval_every,
            last_evaluation=start,
        )  # fmt: skip
        self._period.reset()
        try:
            self._each("on_begin", state)
            while state.step < self.steps and state.stop_reason is None:
                self._each("before_loop", state)
                if state.stop_reason is not None:
                    break
                output = self.train(self.loop_length(state.step))
                state.step = self.current_step()
                self._measure(output)
                self._period.add(output)
                self._each("after_loop", state, output)
                if self.eval_every and state.step % self.eval_every == 0:
                    self._end_period(state)
            self._each("on_loop_end", state)
            if state.step != state.last_evaluation:
                self._end_period(state)
            self._each("on_end", state)
        except KeyboardInterrupt:
            state.step = self.current_step()
            self._each("on_interrupt", state)
            raise
        return state

    def _each(self, hook: str, *args) -> None:
        for action in self.actions:
            getattr(action, hook)(*args)

    def _measure(self, output: LoopOutput) -> None:
        if self.seconds_per_loop is None or output.steps < 1:
            return
        seconds = self.agree(output.seconds)
        if seconds > 0:
            self._rate = output.steps / seconds

    def _end_period(self, state: LoopState) -> None:
        metrics = dict(self.evaluate(state.step)) if self.evaluate is not None else {}
        logs = {"step": state.step}
        if self._period.steps:
            logs.update(self.train_logs(self._period))
        logs.update({f"val_{name}": value for name, value in metrics.items()})
        evaluation = Evaluation(state.step, state.epoch_of(state.step), metrics, logs)
        state.last_evaluation = state.step
        self._period.reset()
        self._each("after_evaluation", state, evaluation)
