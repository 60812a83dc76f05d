"""KerasTuner tuners whose trials train through `kerasllm.training.Trainer`.

`RandomSearch`, `Hyperband` and `BayesianOptimization` are KerasTuner's tuners with `run_trial`
replaced: a trial builds a `Trainer` for the trial's model and `TrainerConfig` in
`search_dir/trial_<id>/` (the folder where KerasTuner keeps `trial.json`), fits it with the
project's data pipelines and distribution strategy, evaluates it, and returns the objective to
the oracle. Between trials the trainer is closed (`Trainer.close` frees its traced graphs) and
the Keras session cleared, so memory does not grow with the number of trials. Reopening a
search directory (`overwrite=False`) reloads the oracle: finished trials are not rerun and an
interrupted trial resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
from collections.abc import Callable, Sequence

import keras
import keras_tuner
import tensorflow as tf

from kerasllm import tokenizers
from kerasllm.training import Trainer, TrainerConfig, distribution, inputs
from kerasllm.tuning import dashboard
from kerasllm.tuning.hypermodel import ZooHyperModel
from kerasllm.utils.progress import Progress

#: Metrics lower is better; every other metric is maximized.
_MINIMIZED = ("loss", "perplexity")
MEMORY_LOG = "memory.jsonl"


def objective_for(metric: str) -> keras_tuner.Objective:
    """The KerasTuner objective of an evaluation metric: "loss" -> `val_loss` (min),
    "accuracy" -> `val_accuracy` (max), "bleu" -> `val_bleu` (max).

    Example:
    >>> objective = objective_for("accuracy")
    >>> objective.name, objective.direction
    ('val_accuracy', 'max')
    """
    name = metric.removeprefix("val_")
    direction = "min" if name in _MINIMIZED else "max"
    return keras_tuner.Objective(f"val_{name}", direction)


@dataclasses.dataclass
class TrialData:
    """The examples every trial trains and evaluates on, and how they become batches.

    Attributes:
        objective: the `kerasllm.training` objective name.
        train, eval: examples in the `kerasllm.training.inputs.Corpus` layout of the objective.
        tokenizer_dir: the saved kerasllm tokenizer shared by all trials. It is loaded again
            after each trial: clearing the Keras session between trials clears TensorFlow's
            kernel cache, which holds the SentencePiece op's resource.
        sequence_length: tokens per example (per side for seq2seq).
        labels: class names of the classification objectives.
        bleu_examples: for seq2seq, how many evaluation pairs are translated (greedy) to score
            BLEU when the tuning metric is "bleu".
    """

    objective: str
    train: object
    eval: object
    tokenizer_dir: str
    sequence_length: int = 128
    labels: Sequence[str] | None = None
    bleu_examples: int = 64
    _tokenizer: object = dataclasses.field(default=None, init=False, repr=False)

    @property
    def tokenizer(self):
        """The tokenizer, loaded from `tokenizer_dir` on first use after `release()`."""
        if self._tokenizer is None:
            self._tokenizer = tokenizers.load(self.tokenizer_dir)
        return self._tokenizer

    def release(self) -> None:
        """Drops the loaded tokenizer (call after `keras.backend.clear_session()`)."""
        self._tokenizer = None

    def dataset_fn(self, training: bool, batch_size: int, seed: int = 0) -> Callable:
        """A per-worker dataset function (`kerasllm.training.inputs.dataset_fn`)."""
        return inputs.dataset_fn(
            self.objective,
            self.train if training else self.eval,
            self.tokenizer,
            batch_size,
            self.sequence_length,
            training=training,
            seed=seed,
            labels=self.labels,
        )


def _memory_kib() -> dict:
    """Resident set size now and at its peak (Linux /proc; getrusage's peak elsewhere)."""
    values = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":")
                    values[key] = int(value.split()[0])
    except OSError:
        pass
    peak = values.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return {"rss_kib": values.get("VmRSS", peak), "peak_rss_kib": peak}


def _bleu(model, data: TrialData) -> float:
    from kerasllm.generation import generate
    from kerasllm.metrics import score

    pairs = list(data.eval)[: data.bleu_examples]
    model.tokenizer = data.tokenizer
    hypotheses = generate(model, [s for s, _ in pairs], max_new_tokens=data.sequence_length)
    return float(score(hypotheses, [t for _, t in pairs])["bleu"])


class TrialProgress(keras.callbacks.Callback):
    """Shows a trial's training on a `Progress` display (standard error): the trials' trainers
    run with `verbose=0`, so without it a trial is silent for as long as it trains.

    The display moves after each training-loop call (about every `seconds_per_loop`) with the
    loss, and shows the evaluation metrics (`val_...`) after each evaluation.

    Args:
        label: what the line starts with, e.g. "trial 03 step".
        steps: the trial's updates (the display's total).
        step: returns the trainer's step.
        stream: where to write (default: standard error).
    """

    def __init__(self, label: str, steps: int, step: Callable[[], int], stream=None):
        super().__init__()
        self.progress = Progress(steps, stream=stream, label=label)
        self._step = step

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.progress.update(self._step(), {"loss": float((logs or {}).get("loss", "nan"))})

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if k.startswith("val_")}
        self.progress.update(self._step(), metrics)

    def on_train_end(self, logs=None) -> None:
        self.progress.close()


class TrainerTunerMixin:
    """Replaces KerasTuner's `run_trial` with a `Trainer` run; mixed into each tuner below.

    Args:
        hypermodel: the `ZooHyperModel`.
        data: the `TrialData`.
        base_config: the `TrainerConfig` every trial starts from (`model_dir` is replaced by the
            trial's folder; `steps` by `steps`; searched fields by the trial's values). Its
            `global_batch_size` is used when the batch size is not searched.
        metric: evaluation metric to optimize ("loss", "accuracy", "perplexity", "f1", "bleu").
        steps: training updates per trial (RandomSearch, BayesianOptimization) or per Hyperband
            epoch.
        strategy: a `tf.distribute.Strategy` or a `distribution.get_strategy` name.
        search_dir: the search's folder; trials go to `search_dir/trial_<id>/`.
        **kwargs: the KerasTuner tuner's own arguments (`max_trials`, `overwrite`, `seed`, ...).
    """

    def __init__(
        self,
        hypermodel: ZooHyperModel,
        data: TrialData,
        base_config: TrainerConfig,
        metric: str,
        steps: int,
        search_dir: str,
        strategy: tf.distribute.Strategy | str = "auto",
        **kwargs,
    ):
        if metric == "bleu" and data.objective != "seq2seq":
            raise ValueError(f"metric='bleu' needs the seq2seq objective; got {data.objective!r}.")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`steps` must be a positive integer; got {steps!r}.")
        if hypermodel.space.batch_size is None and base_config.global_batch_size is None:
            raise ValueError("Give base_config.global_batch_size or search `batch_size`.")
        search_dir = os.path.abspath(os.fspath(search_dir))
        self.data = data
        self.base_config = base_config
        self.metric = metric.removeprefix("val_")
        self.steps = steps
        self.strategy = (
            distribution.get_strategy(strategy) if isinstance(strategy, str) else strategy
        )
        #: Trials trained by this tuner object (finished trials reloaded from disk are not).
        self.trials_run: list[str] = []
        super().__init__(
            hypermodel=hypermodel,
            objective=objective_for(metric),
            directory=os.path.dirname(search_dir),
            project_name=os.path.basename(search_dir),
            **kwargs,
        )
        if distribution.is_chief(self.strategy):
            dashboard.write_config(self.project_dir, hypermodel.space, self.metric)

    # KerasTuner builds the model several times to discover conditional hyperparameters; the
    # space declares all its branches itself, so no model is built before the first trial.
    def _populate_initial_space(self):
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def _trial_plan(self, trial) -> tuple[int, str | None]:
        """(updates to train, checkpoint to start from) for a trial."""
        return self.steps, None

    def run_trial(self, trial, *args, **kwargs) -> dict:
        hp = trial.hyperparameters
        model_dir = self.get_trial_dir(trial.trial_id)
        steps, init_checkpoint = self._trial_plan(trial)
        config = self.hypermodel.trainer_config(
            hp,
            self.base_config,
            model_dir=model_dir,
            steps=steps,
            init_checkpoint=init_checkpoint,
            checkpoint_every=min(self.base_config.checkpoint_every, steps),
            best_metric=None,
        )
        batch_size = config.global_batch_size
        self.trials_run.append(trial.trial_id)
        trainer = Trainer(
            lambda: self.hypermodel.build(hp),
            self.hypermodel.objective.__class__(label_smoothing=config.label_smoothing),
            config,
            strategy=self.strategy,
        )
        callbacks = []
        if config.verbose == 0 and distribution.is_chief(self.strategy):
            # The trial's own trainer shows nothing; this one line per trial says how it goes.
            callbacks.append(
                TrialProgress(f"trial {trial.trial_id} step", steps, lambda t=trainer: t.step)
            )
        try:
            history = trainer.fit(
                self.data.dataset_fn(True, batch_size, config.seed),
                self.data.dataset_fn(False, batch_size),
                callbacks=callbacks,
            )
            metrics = {f"val_{k}": float(v) for k, v in history["eval"].items()}
            if self.metric == "bleu":
                metrics["val_bleu"] = _bleu(trainer.model, self.data)
                trainer.summaries.scalars("eval", {"bleu": metrics["val_bleu"]}, trainer.step)
        finally:
            for callback in callbacks:  # also when the trial failed
                callback.progress.close()
            callbacks.clear()  # it refers to the trainer, which must go now
            # Release the trial's traced functions (Trainer.close breaks the graph reference
            # cycles that garbage collection leaves behind) and every reference to its model.
            trainer.close()
            del trainer
            keras.backend.clear_session()
            self.data.release()
            gc.collect()
        if f"val_{self.metric}" not in metrics:
            raise ValueError(
                f"metric={self.metric!r} is not an evaluation metric of "
                f"{self.data.objective}; available: {sorted(m[4:] for m in metrics)}."
            )
        memory = _memory_kib()
        if distribution.is_chief(self.strategy):
            dashboard.write_trial(model_dir, hp.values, trial.trial_id)
            with open(os.path.join(self.project_dir, MEMORY_LOG), "a") as log:
                log.write(json.dumps({"trial_id": trial.trial_id, **memory}) + "\n")
        return metrics

    def memory_log(self) -> list[dict]:
        """`{"trial_id", "rss_kib", "peak_rss_kib"}` after each trial run in this directory."""
        path = os.path.join(self.project_dir, MEMORY_LOG)
        if not os.path.exists(path):
            return []
        with open(path) as log:
            return [json.loads(line) for line in log if line.strip()]


class RandomSearch(TrainerTunerMixin, keras_tuner.RandomSearch):
    """KerasTuner's random search, trials trained by the project's `Trainer`.

    Example:
        tuner = RandomSearch(hypermodel, data, TrainerConfig("unused", steps=1,
                             global_batch_size=32), metric="accuracy", steps=200,
                             search_dir="runs/search", max_trials=10)
        tuner.search()
    """


class BayesianOptimization(TrainerTunerMixin, keras_tuner.BayesianOptimization):
    """KerasTuner's Gaussian-process Bayesian optimization, trials trained by the `Trainer`."""


class Hyperband(TrainerTunerMixin, keras_tuner.Hyperband):
    """KerasTuner's Hyperband; one Hyperband epoch is `steps` trainer updates.

    A trial promoted from an earlier bracket starts from that trial's last checkpoint and trains
    only the epochs it adds. Pass KerasTuner's `max_epochs` and `factor`.
    """

    def _trial_plan(self, trial) -> tuple[int, str | None]:
        values = trial.hyperparameters.values
        epochs = values.get("tuner/epochs", 1)
        initial = values.get("tuner/initial_epoch", 0)
        previous = values.get("tuner/trial_id")
        init_checkpoint = None if previous is None else self.get_trial_dir(previous)
        if init_checkpoint is None:
            initial = 0
        return max(1, (epochs - initial) * self.steps), init_checkpoint


ALGORITHMS = {
    "random": RandomSearch,
    "hyperband": Hyperband,
    "bayesian": BayesianOptimization,
}


def make_tuner(algorithm: str, *args, **kwargs) -> TrainerTunerMixin:
    """The tuner class named `algorithm` ("random", "hyperband", "bayesian"), constructed."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algorithm!r}; expected one of {sorted(ALGORITHMS)}.")
    return ALGORITHMS[algorithm](*args, **kwargs)
