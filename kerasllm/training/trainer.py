"""`Trainer`: one `strategy.run` training loop for one device, several GPUs, several hosts and TPUs.

The loop follows TF Model Garden's orbit: the host calls one `tf.function` that runs up to
`steps_per_loop` updates, each a `strategy.run` of the replica step below; between those calls
a `controller.Controller` evaluates and runs the `actions` (time budget, profiler, logging,
checkpoints, best checkpoint, early stopping, Keras callbacks), each one small piece.

Replica step (per update):
1. every replica computes, for its share of each of the `accumulation_steps` micro-batches, the
   objective's loss sums divided by the *global* normalizers (real tokens, masked positions or
   examples, all-reduced over replicas and micro-batches beforehand), and the gradients of that;
2. gradients are summed over micro-batches, then over replicas (one all-reduce): the result is
   exactly the gradient of the mean loss over the whole global batch;
3. the global gradient norm is measured and clipped, and the optimizer applies the same update on
   every replica.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import sys
import time
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from kerasllm import _compat, hardware
from kerasllm.training import distribution, finetuning, objectives, optimization
from kerasllm.training.actions import (
    BestCheckpointAction,
    CheckpointAction,
    EarlyStoppingAction,
    KerasCallbacksAction,
    LearningCurvesAction,
    ProfilerAction,
    TimeBudgetAction,
    TrainingHistory,
    TrainLogAction,
)
from kerasllm.training.checkpointing import Checkpointer, ModelState, load_model_weights
from kerasllm.training.config import TrainerConfig
from kerasllm.training.controller import Action, Controller, LoopOutput, Window
from kerasllm.training.summaries import SummaryWriter
from kerasllm.utils.progress import Progress

#: Seconds an evaluation runs before it shows a progress display (quick ones show none).
EVAL_PROGRESS_DELAY = 2.0

#: A `tf.data.Dataset` of global batches, or `fn(input_context) -> Dataset` of per-replica ones.
DataSource = tf.data.Dataset | Callable[[tf.distribute.InputContext], tf.data.Dataset]


def _size(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def _config_or_none(model) -> dict | None:
    """The model's `get_config()`, or None for a model that cannot describe itself (a plain
    subclassed `keras.Model`): only used to explain a checkpoint mismatch."""
    try:
        return model.get_config()
    except Exception:  # NotImplementedError, or a config Keras cannot serialize
        return None


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is left untouched."""


# TensorFlow's registry of gradient functions, by op type name (see Trainer._call_traced).
_GRADIENT_REGISTRY: dict = _compat.gradient_registry()


def _strategy_by_name(name: str, model) -> tf.distribute.Strategy:
    """The strategy `Trainer(model, strategy=name)` trains with.

    A function building the model gets `distribution.get_strategy(name)`. A built model's
    variables exist already, in the scope of the strategy it was built under (the default
    strategy outside any scope: `model.distribute_strategy`, what Keras' own `fit` uses), and
    no other strategy can hold their optimizer slots. With "auto" or "one_device" it trains
    there, unless "auto" would spread training over several devices or workers and the model
    sits on one: that raises, rather than silently leave the other devices idle.
    """
    if not isinstance(model, keras.Model) or not model.variables:
        return distribution.get_strategy(name)
    own = model.distribute_strategy
    if name not in ("auto", "one_device") or not own.extended.variable_created_in_scope(
        model.variables[0].value
    ):
        return distribution.get_strategy(name)  # `_build_model` explains what to do instead
    if own.num_replicas_in_sync > 1:  # built in a multi-device scope: only "auto" keeps it
        return own if name == "auto" else distribution.get_strategy(name)
    resolved = distribution.resolve_name(name)
    if resolved != "one_device":
        raise ValueError(
            f"strategy={name!r} chose {resolved!r} here (several devices or workers), but "
            f"`model` was built in the scope of {type(own).__name__} (one device). Pass a "
            "function that builds the model (`Trainer(lambda: zoo.get(...), ...)`) to train "
            "on every device, or strategy='one_device' to train the built model on one."
        )
    return own


class Trainer:
    """Trains a kerasllm model on an objective with any `tf.distribute` strategy.

    Args:
        model: a zero-argument callable that builds the model (called inside the strategy's scope
            and under the configured precision policy; required for multi-device strategies), or
            a built `keras.Model`: with `strategy` "auto" (one device or a strategy the model
            was built in) or "one_device", it trains under the strategy it was built in
            (`model.distribute_strategy`: the default strategy when built outside any scope);
            a `tf.distribute.Strategy` passed must be the one whose scope built it.
        objective: an objective name ("masked_lm", "causal_lm", "seq2seq", "classification",
            "token_classification") or a `kerasllm.training.objectives.Objective`.
        config: the `TrainerConfig`.
        strategy: a `tf.distribute.Strategy` or a name for `distribution.get_strategy` ("auto",
            "one_device", "mirrored", "multi_worker_mirrored", "tpu").
        optimizer: a Keras optimizer to use instead of the one `config` describes (built in the
            strategy scope).
        sample_fn: optional `fn(model) -> str | list[str]` whose text is written to TensorBoard at
            each evaluation (e.g. greedy continuations of fixed prompts).
        metrics_fn: optional `fn(model) -> {name: float}` of extra evaluation metrics, computed
            at each evaluation after the objective's and merged with them (history,
            TensorBoard, and `config.best_metric` may name one), e.g. the BLEU of generated
            translations. Called on every worker: all hold the same weights.

    On construction the trainer builds the model, applies the fine-tuning settings, removes what
    interrupted checkpoint saves left in `config.model_dir`, and restores the newest readable
    checkpoint there (or loads `config.init_checkpoint` when there is none), so `fit` resumes
    where a previous run stopped; a `CheckpointError` when checkpoints exist but none can be
    restored.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from kerasllm import zoo
    >>> from kerasllm.testing import TINY
    >>> ids = np.random.default_rng(0).integers(1, 97, (8, 9)).astype("int32")
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     ({"token_ids": ids[:, :-1], "padding_mask": np.ones((8, 8), "int32")},
    ...      ids[:, 1:], np.ones((8, 8), "float32"))).batch(4)
    >>> trainer = Trainer(lambda: zoo.get("gpt_tiny", task="causal_lm", weights=None, **TINY),
    ...                   "causal_lm", TrainerConfig("/tmp/doc_run", steps=4, verbose=0))
    >>> history = trainer.fit(data, eval_data=data)
    >>> history["step"], sorted(history["eval"])
    (4, ['accuracy', 'loss', 'perplexity'])
    """

    def __init__(
        self,
        model: Callable[[], keras.Model] | keras.Model,
        objective: str | objectives.Objective,
        config: TrainerConfig,
        strategy: tf.distribute.Strategy | str | None = None,
        optimizer: keras.optimizers.Optimizer | None = None,
        sample_fn: Callable[[keras.Model], str | list[str]] | None = None,
        metrics_fn: Callable[[keras.Model], Mapping[str, float]] | None = None,
    ):
        # "auto" precision and compilation resolved for this machine; the resolved values
        # are what runs, what `config.json` records and what `self.config` holds.
        self.hardware_choice: hardware.Choice | None = None
        config = self._resolve_auto(config, model)
        self.config = config
        self._progress: Progress | None = None  # the progress display while `fit` runs
        self.objective = (
            objective
            if isinstance(objective, objectives.Objective)
            else objectives.get(objective, label_smoothing=config.label_smoothing)
        )
        if strategy is None or isinstance(strategy, str):
            strategy = _strategy_by_name(strategy or "auto", model)
        self.strategy = strategy
        self.is_chief = distribution.is_chief(strategy)
        self.num_replicas = strategy.num_replicas_in_sync
        self.sample_fn = sample_fn
        self.metrics_fn = metrics_fn
        if config.global_batch_size is not None and config.global_batch_size % self.num_replicas:
            raise ValueError(
                f"global_batch_size={config.global_batch_size} is not divisible by the "
                f"{self.num_replicas} replicas of {type(strategy).__name__}."
            )
        # Keras draws default initializer and dropout seeds from Python's `random`. Not
        # `tf.random.set_seed`: it clears TensorFlow's kernel cache, which destroys resources
        # held by cached kernels, such as the SentencePiece model of an existing tokenizer.
        random.seed(config.seed)
        np.random.seed(config.seed)
        with strategy.scope():
            self.model = self._build_model(model)
            multipliers = finetuning.apply_finetuning(self.model, config)
            # Where linear/cosine decay ends: `steps`, or sooner when a time budget runs out
            # first (fit moves it). Not checkpointed: each run sets its own.
            self._decay_end = tf.Variable(
                float(config.steps), dtype=tf.float32, trainable=False, name="decay_end"
            )
            if optimizer is None:
                optimizer = optimization.create_optimizer(
                    config, self.model, multipliers, decay_end=self._decay_end
                )
            elif multipliers:
                raise ValueError(
                    "layerwise_lr_decay needs the Trainer's own optimizer; do not pass `optimizer`."
                )
            self.optimizer = optimizer
            self.trainable_variables = list(self.model.trainable_variables)
            if not self.trainable_variables:
                raise ValueError("The model has no trainable weights (everything is frozen).")
            self.optimizer.build(self.trainable_variables)
            optimization.skip_gradient_all_reduce(self.optimizer)
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self._batches_consumed = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="batches_consumed"
            )
        _, worker_id = distribution.worker_info(strategy)
        self.checkpointer = Checkpointer(
            config.model_dir,
            {
                "model": ModelState(self.model),
                "optimizer": self.optimizer,
                "step": self._step,
                "batches_consumed": self._batches_consumed,
            },
            keep=config.keep_checkpoints,
            is_chief=self.is_chief,
            worker_id=worker_id,
            model_config=_config_or_none(self.model),
        )
        self.summaries = SummaryWriter(config.model_dir, is_chief=self.is_chief)
        self.restored_from = self.checkpointer.restore_latest()
        if self.restored_from is not None:
            self.log(f"Resumed from {self.restored_from} at step {self.step}.")
        elif config.init_checkpoint:
            loaded, total = load_model_weights(self.model, config.init_checkpoint)
            self.log(f"Initialized {loaded}/{total} variables from {config.init_checkpoint}.")
        self._train_loop = None
        self._eval_step = None
        self._custom_gradients: set[str] = set()  # registered while tracing; see close()

    # ------------------------------------------------------------------ setup
    def _resolve_auto(self, config: TrainerConfig, model) -> TrainerConfig:
        """`config` with "auto" precision and jit_compile replaced by `kerasllm.hardware`'s
        choice for this machine (a built model keeps its own dtype policy)."""
        precision = config.precision
        if precision == "auto" and isinstance(model, keras.Model):
            # Its variables exist already: the policy they were built under is the one to use.
            name = model.dtype_policy.name
            precision = name if name in hardware.PRECISIONS else precision
        precision, jit_compile, choice = hardware.resolve(precision, config.jit_compile)
        self.hardware_choice = choice
        if (precision, jit_compile) == (config.precision, config.jit_compile):
            return config
        return dataclasses.replace(config, precision=precision, jit_compile=jit_compile)

    def _build_model(self, model) -> keras.Model:
        if isinstance(model, keras.Model):
            variables = model.variables
            if not variables:
                raise ValueError("The model has no weights yet; build it before training.")
            # Every strategy, OneDeviceStrategy included, builds the optimizer's slots next to
            # the model's variables and refuses variables created outside its scope.
            if not self.strategy.extended.variable_created_in_scope(variables[0].value):
                raise ValueError(
                    f"The model's variables were not created in the scope of the `strategy` "
                    f"argument ({type(self.strategy).__name__}). Pass a function that builds "
                    "the model instead (`Trainer(lambda: zoo.get(...), ...)`), build it inside "
                    "`strategy.scope()`, or leave `strategy` unset ('auto') to train it where "
                    "it was built (`model.distribute_strategy`)."
                )
        elif callable(model):
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(self.config.precision)
            try:
                model = model()
            finally:
                keras.config.set_dtype_policy(previous)
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"The model function returned a {type(model).__name__}, not a keras.Model."
                )
        else:
            raise ValueError(f"`model` must be a keras.Model or a callable; got {type(model)}.")
        policy = model.dtype_policy.name
        if policy != self.config.precision:
            raise ValueError(
                f"The model's dtype policy is {policy!r} but config.precision is "
                f"{self.config.precision!r}; build it under the same policy (or pass a function)."
            )
        return model

    def close(self) -> None:
        """Releases the traced training and evaluation functions and closes the summary writers.

        Tracing the training loop registers gradient functions in TensorFlow's global registry
        (see `_call_traced`) that hold the traced graph, and with it the `while`-loop functions
        it registered in the eager context, for the life of the process: about 20 MiB per
        trainer even for a tiny model. A process that builds many trainers, such as a
        hyperparameter search, calls this between them. The trainer stays usable: the next
        `fit` or `evaluate` traces its functions again.
        """
        for name in self._custom_gradients:
            _GRADIENT_REGISTRY.pop(name, None)
        self._custom_gradients.clear()
        self._train_loop = self._eval_step = None
        self.summaries.close()

    def _call_traced(self, function, *args):
        """Calls one of the trainer's tf.functions, remembering the gradient functions that
        tracing it added to TensorFlow's global registry.

        `ReplicaContext.all_reduce` (used for the gradients, loss and token counts) is a
        `tf.custom_gradient`; traced in a graph, every call registers a gradient function under a
        new global name that is never removed and holds the whole traced loop. `close` removes
        them: they are only needed while that graph is being traced.
        """
        size = len(_GRADIENT_REGISTRY)
        outputs = function(*args)
        if len(_GRADIENT_REGISTRY) > size:  # it traced: the new names come last (dict order)
            added = itertools.islice(_GRADIENT_REGISTRY, size, None)
            self._custom_gradients.update(n for n in added if n.startswith("CustomGradient"))
        return outputs

    @property
    def step(self) -> int:
        """Optimizer updates done so far (restored on resume)."""
        return int(self._step.numpy())

    def log(self, message: str) -> None:
        """Prints `message` on the chief when `config.verbose` is on (on a line of its own,
        below the progress display while `fit` shows one)."""
        if self.is_chief and self.config.verbose:
            if self._progress is not None:
                self._progress.message(message)
            else:
                print(message, flush=True)

    def _distribute(self, data: DataSource, training: bool, skip: int = 0):
        """A distributed dataset; training data repeats and skips the batches already consumed."""
        if isinstance(data, tuple) and data and isinstance(data[0], tf.data.Dataset):
            raise ValueError(
                "Got a tuple; pass the dataset itself (kerasllm.data pipelines return "
                "`(dataset, stats)`: use `[0]`)."
            )

        def prepare(dataset):
            if not isinstance(dataset, tf.data.Dataset):
                raise ValueError(f"Expected a tf.data.Dataset; got {type(dataset).__name__}.")
            if training:
                dataset = dataset.repeat()
                if skip:
                    dataset = dataset.skip(skip)
            return dataset

        if isinstance(data, tf.data.Dataset):
            return self.strategy.experimental_distribute_dataset(prepare(data))
        if callable(data):
            return self.strategy.distribute_datasets_from_function(lambda ctx: prepare(data(ctx)))
        raise ValueError(
            "Data must be a tf.data.Dataset or a function of a tf.distribute.InputContext; "
            f"got {type(data).__name__}."
        )

    # ------------------------------------------------------------- train step
    def _gradients(self, x, y, sample_weight, denominators):
        """Loss of one micro-batch on one replica, normalized by the global weights, and its
        gradients (None for weights the loss does not reach)."""
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            sums = self.objective.loss_sums(y, outputs, sample_weight)
            loss = tf.add_n([tf.math.divide_no_nan(s, d) for s, d in zip(sums, denominators)])
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        return [None if g is None else tf.convert_to_tensor(g) for g in gradients], loss

    def _replica_step(self, batches):
        context = tf.distribute.get_replica_context()

        def all_reduce(values):
            # One replica: its values are the sums. Skipping the collective saves its ops and
            # lets XLA compile the whole step (`_make_train_loop`).
            if self.num_replicas == 1:
                return values
            return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

        batches = [keras.utils.unpack_x_y_sample_weight(batch) for batch in batches]
        local = [self.objective.normalizers(y, w) for _, y, w in batches]
        local = [tf.add_n(list(term)) for term in zip(*local)]
        denominators = all_reduce(local)
        gradient_fn = self._gradients
        if self.config.jit_compile and self.num_replicas > 1:
            # Collectives stay outside XLA: only the forward and backward pass is compiled.
            gradient_fn = tf.function(gradient_fn, jit_compile=True)
        total, loss, tokens = None, 0.0, 0.0
        for x, y, w in batches:
            gradients, micro_loss = gradient_fn(x, y, w, denominators)
            if total is None:
                total = gradients
            else:
                total = [a if a is None else a + b for a, b in zip(total, gradients)]
            loss += micro_loss
            tokens += self.objective.count_tokens(x)
        pairs = [(g, v) for g, v in zip(total, self.trainable_variables) if g is not None]
        gradients = all_reduce([g for g, _ in pairs])
        loss, tokens = all_reduce([loss, tokens])
        scale = optimization.loss_scale(self.optimizer)
        norm = tf.linalg.global_norm(gradients)
        if self.config.clipnorm is not None:
            gradients, _ = tf.clip_by_global_norm(
                gradients, self.config.clipnorm * scale, use_norm=norm
            )
        self.optimizer.apply(gradients, [v for _, v in pairs])
        return loss, norm / scale, tokens

    def _make_train_loop(self):
        strategy = self.strategy
        accumulation = self.config.accumulation_steps

        # The replica step has no data-dependent Python control flow: skipping AutoGraph's
        # conversion of it (and of every layer it calls) saves seconds of tracing.
        replica_step = tf.autograph.experimental.do_not_convert(self._replica_step)
        if self.config.jit_compile and self.num_replicas == 1:
            # No collective in a one-replica step: XLA compiles all of it, the gradients,
            # clipping and optimizer update fused (the update alone is hundreds of small ops
            # per step otherwise).
            replica_step = tf.function(replica_step, jit_compile=True, autograph=False)

        def first(value):
            return strategy.experimental_local_results(value)[0]

        @tf.function
        def train_loop(iterator, num_steps):
            loss_sum = tf.constant(0.0)
            norm_sum = tf.constant(0.0)
            tokens = tf.constant(0.0)
            done = tf.constant(0)
            finite = tf.constant(True)
            for _ in tf.range(num_steps):
                batches = [next(iterator) for _ in range(accumulation)]
                loss, norm, step_tokens = strategy.run(replica_step, args=(batches,))
                loss, norm, step_tokens = first(loss), first(norm), first(step_tokens)
                self._step.assign_add(1)
                self._batches_consumed.assign_add(accumulation)
                done += 1
                finite = tf.math.is_finite(loss)
                if not finite:
                    break
                loss_sum += loss
                norm_sum += norm
                tokens += step_tokens
            return loss_sum, norm_sum, tokens, done, finite

        return train_loop

    # -------------------------------------------------------------- eval step
    def _replica_eval(self, batch):
        x, y, w = keras.utils.unpack_x_y_sample_weight(batch)
        outputs = self.model(x, training=False)
        return self.objective.metric_sums(y, outputs, w)

    def _make_eval_step(self):
        strategy = self.strategy
        replica_eval = tf.autograph.experimental.do_not_convert(self._replica_eval)

        @tf.function(reduce_retracing=True)
        def eval_step(batch):
            sums = strategy.run(replica_eval, args=(batch,))
            return tf.nest.map_structure(
                lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), sums
            )

        return eval_step

    def evaluate(self, data: DataSource, steps: int | None = None) -> dict:
        """Evaluates the objective's metrics on `data` (every batch, or the first `steps`).

        Returns:
            A dict of metrics, e.g. `{"loss", "perplexity", "accuracy"}` for language models or
            `{"loss", "accuracy", "f1"}` for classifiers.
        """
        if self._eval_step is None:
            self._eval_step = self._make_eval_step()
        totals = None
        display = self._eval_display(data, steps)
        try:
            for index, batch in enumerate(self._distribute(data, training=False)):
                if steps is not None and index >= steps:
                    break
                sums = {k: v.numpy() for k, v in self._call_traced(self._eval_step, batch).items()}
                totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
                if display is not None:
                    display.update(index + 1)
        finally:
            if display is not None:
                display.close()
        if totals is None:
            raise ValueError("The evaluation data yielded no batch.")
        return self.objective.results(totals)

    def _eval_display(self, data: DataSource, steps: int | None) -> Progress | None:
        """The chief's progress display of an evaluation (verbose=1), on the trainer's stream,
        below the training display during `fit`; shown only once an evaluation has run for
        `EVAL_PROGRESS_DELAY` seconds (most take less, and then print nothing)."""
        if not (self.is_chief and self.config.verbose == 1):
            return None
        total = steps
        if isinstance(data, tf.data.Dataset):
            cardinality = int(data.cardinality())
            if cardinality >= 0:  # else infinite or unknown (e.g. after `filter`)
                total = cardinality if total is None else min(total, cardinality)
        return Progress(
            total, stream=sys.stdout, label="eval batch", delay=EVAL_PROGRESS_DELAY,
            below=self._progress,
        )  # fmt: skip

    # -------------------------------------------------------------------- fit
    def _agreed_seconds(self, seconds: float) -> float:
        """`seconds` averaged over the workers, so that every worker takes the same time-based
        decisions (stop now, where the decay ends, how many updates the next training-loop call
        runs): the replicas stay identical and their collectives match."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return seconds
        local = self.strategy.run(lambda: tf.constant(seconds, tf.float32))
        return float(self.strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None))

    def _auto_note(self) -> str:
        """Why "auto" chose what it did (empty when nothing was "auto")."""
        choice = self.hardware_choice
        return "" if choice is None else f" (auto for {choice.device}: {choice.reason})"

    def _describe_batches(self) -> str:
        config = self.config
        replicas = f"{self.num_replicas} replica(s)"
        if config.global_batch_size is None:
            return (
                f"{replicas}; batch size set by the data; "
                f"{config.accumulation_steps} batch(es) per update"
            )
        per_replica = config.global_batch_size // self.num_replicas
        return (
            f"global batch {config.global_batch_size} = {replicas} x {per_replica} per replica; "
            f"{config.accumulation_steps} batch(es) per update = "
            f"{config.global_batch_size * config.accumulation_steps} examples per update"
        )

    def _all_metrics(self, eval_data) -> dict:
        """The objective's evaluation metrics and those of `metrics_fn`."""
        metrics = self.evaluate(eval_data, self.config.eval_steps)
        if self.metrics_fn is not None:
            extra = {name: float(value) for name, value in self.metrics_fn(self.model).items()}
            if clash := sorted(set(extra) & set(metrics)):
                raise ValueError(
                    f"metrics_fn returned {clash}, which the {self.objective.name} objective "
                    f"already reports ({sorted(metrics)}); rename them."
                )
            metrics.update(extra)
        return metrics

    def _run_eval(self, eval_data, step: int) -> dict:
        """One evaluation during `fit`: the metrics, written to TensorBoard with the samples of
        `sample_fn`, and printed."""
        metrics = self._all_metrics(eval_data)
        self.summaries.scalars("eval", metrics, step)
        if self.sample_fn is not None and self.is_chief:
            self.summaries.text("eval", "samples", self.sample_fn(self.model), step)
        self.summaries.flush()
        self.log(f"step {step} eval: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        return metrics

    def _train_metrics(self, window: Window) -> dict:
        """The metrics of a window of updates: mean loss, learning rate, mean gradient norm,
        throughput once a timed loop has run, and the loss scale under mixed_float16."""
        means = window.means()
        metrics = {
            "loss": means.pop("loss"),
            "learning_rate": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate)),
            **means,
        }
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            metrics["loss_scale"] = float(self.optimizer.dynamic_scale.numpy())
        return metrics

    def _run_train_loop(self, iterator, num_steps: int) -> LoopOutput:
        """One call of the traced training loop: `num_steps` updates (fewer if the loss stops
        being finite, which raises `TrainingDivergedError`)."""
        # The first call traces the loop: leave it out of the throughput figures.
        timed = self._train_loop is not None
        if self._train_loop is None:
            self._train_loop = self._make_train_loop()
        began = time.perf_counter()
        outputs = self._call_traced(self._train_loop, iterator, tf.constant(num_steps))
        loss_sum, norm_sum, tokens, done, finite = (t.numpy() for t in outputs)
        elapsed = time.perf_counter() - began
        if not finite:
            last_good = self.checkpointer.manager.latest_checkpoint or "none yet"
            raise TrainingDivergedError(
                f"The training loss became NaN or infinite at step {self.step}. Training "
                f"stopped without saving; the last good checkpoint is {last_good}. "
                "Lower the learning rate, enable or tighten clipnorm, add warmup, or use "
                "float32 / mixed_bfloat16 instead of mixed_float16."
            )
        return LoopOutput(
            int(done), float(loss_sum), float(norm_sum), float(tokens), elapsed, timed
        )

    def _actions(
        self, progress: Progress | None, callbacks: list, history: TrainingHistory
    ) -> list[Action]:
        """The outer loop's actions, in the order they run at each point."""
        config = self.config
        actions: list[Action] = [
            TimeBudgetAction(
                config.max_train_seconds,
                config.steps,
                self._decay_end,
                clock=self._agreed_seconds,
                log=self.log,
                progress=progress,
            )
        ]
        if config.profile_steps:
            actions.append(ProfilerAction(self.summaries, config.profile_steps))
        actions += [
            TrainLogAction(
                config.log_every,
                config.steps,
                self._train_metrics,
                self.summaries,
                progress=progress,
                log=self.log if config.verbose == 2 else None,
            ),
            CheckpointAction(self.checkpointer, config.checkpoint_every, log=self.log),
        ]
        if config.best_metric is not None:
            actions.append(
                BestCheckpointAction(
                    self.checkpointer,
                    config.best_metric,
                    config.resolved_best_mode,
                    self.objective.name,
                    log=self.log,
                )
            )
        if config.early_stopping_patience is not None:
            actions.append(
                EarlyStoppingAction(
                    config.early_stopping_metric,
                    config.early_stopping_patience,
                    config.early_stopping_min_delta,
                    config.resolved_early_stopping_mode,
                    log=self.log,
                )
            )
        epochs = -(-config.steps // config.eval_every) if config.eval_every else 1
        params = {
            "epochs": epochs,
            "steps": config.eval_every or config.steps,
            "verbose": config.verbose,
        }
        # Controller `Action`s given as callbacks (e.g. `compression.MagnitudePruning`) run
        # as they are; Keras callbacks through the adapter.
        actions += [c for c in callbacks if isinstance(c, Action)]
        keras_callbacks = [c for c in callbacks if not isinstance(c, Action)]
        actions.append(KerasCallbacksAction([*keras_callbacks, history], self.model, params))
        if self.is_chief:
            actions.append(LearningCurvesAction(config.model_dir, log=self.log))
        return actions

    def fit(
        self,
        train_data: DataSource,
        eval_data: DataSource | None = None,
        callbacks: list[keras.callbacks.Callback | Action] | None = None,
    ) -> TrainingHistory:
        """Trains until `config.steps` updates, resuming from the model directory's state.

        The outer loop is a `kerasllm.training.controller.Controller`: it runs the traced
        training loop in calls of up to `config.steps_per_loop` updates (and about
        `config.seconds_per_loop` seconds), and between calls its actions handle the time
        budget, the profiler, logs and progress, checkpoints, the best checkpoint, early
        stopping and the Keras callbacks.

        Args:
            train_data: a `tf.data.Dataset` of global `(x, y, sample_weight)` batches, or a
                function `fn(input_context)` returning this worker's dataset of per-replica
                batches (use `input_context.get_per_replica_batch_size(global_batch_size)` and
                `input_context.input_pipeline_id` to shard). It is repeated as needed; on resume
                the batches already consumed are skipped, so deterministic data continues where it
                stopped.
            eval_data: the same kinds, finite; evaluated every `eval_every` updates and at the end.
            callbacks: `kerasllm.training.controller.Action`s, run between training-loop
                calls (`kerasllm.compression.MagnitudePruning`), and
                `keras.callbacks.Callback`s (`EarlyStopping`, `CSVLogger`,
                `LambdaCallback`, `TerminateOnNaN`, your own), run as Keras' `fit` runs them
                with **one evaluation period (`config.eval_every` updates, or the whole run
                when it is None) as an epoch**: `on_epoch_end(epoch, logs)` comes at each
                evaluation with `logs` holding the period's mean training `loss`,
                `learning_rate`, `gradient_norm` (and throughput), the evaluation metrics
                prefixed `val_` (`val_loss`, `val_accuracy`, ...) and `step`; batch hooks run
                once per training-loop call. Setting `model.stop_training = True` stops
                training after the current call or evaluation, with a checkpoint. Epoch numbers
                continue across resumed runs (`step // eval_every`). The trainer writes its own
                TensorBoard logs: a `keras.callbacks.TensorBoard` is not needed. Callbacks that
                change the optimizer (`ReduceLROnPlateau`, `LearningRateScheduler`) do not
                apply: the trainer's learning rate is its schedule. `EarlyStopping`'s
                `restore_best_weights=True` restores the weights in memory at the end; the
                last checkpoint keeps the final state (for resuming).

        Returns:
            A `TrainingHistory`: a Keras `History` with one entry per evaluation period of this
            call (`history.history["val_loss"]`, ...), that also reads as the mapping
            `{"step", "train": {...}, "eval": {...}}` of the step reached, the last logged
            training metrics and the last evaluation; `stop_reason` says why training stopped
            early ("time_budget", "early_stopping", "callback"), if it did.

        Raises:
            TrainingDivergedError: the loss became NaN or infinite (nothing is saved after it).
            CheckpointError: a checkpoint could not be saved (e.g. the disk is full); the ones
                saved before are intact.
        """
        config = self.config
        callbacks = list(callbacks or [])
        if self.is_chief:
            os.makedirs(config.model_dir, exist_ok=True)
            config.save(os.path.join(config.model_dir, "config.json"))
        start = self.step
        history = TrainingHistory(start)
        if start >= config.steps:
            self.log(f"Already at step {start} >= steps={config.steps}; nothing to train.")
            if eval_data is not None:
                history.eval = self._all_metrics(eval_data)
            return history
        self.log(
            f"Training {self.model.name} ({_size(self.model.weights):,} parameters, "
            f"{_size(self.trainable_variables):,} trainable) on "
            f"{self.objective.name} with {type(self.strategy).__name__}: {self._describe_batches()}"
            f"; steps {start} -> {config.steps}; precision {config.precision}, "
            f"XLA {'on' if config.jit_compile else 'off'}{self._auto_note()}."
        )
        iterator = iter(
            self._distribute(train_data, training=True, skip=int(self._batches_consumed.numpy()))
        )
        progress = None
        if self.is_chief and config.verbose == 1:
            # Standard output, with the log lines it shares the screen with (`log`).
            progress = Progress(config.steps, stream=sys.stdout)
        evaluations: list[dict] = []

        def evaluate(step: int) -> dict:
            evaluations.append(self._run_eval(eval_data, step))
            return evaluations[-1]

        actions = self._actions(progress, callbacks, history)
        controller = Controller(
            train=lambda num_steps: self._run_train_loop(iterator, num_steps),
            current_step=lambda: self.step,
            steps=config.steps,
            steps_per_loop=config.steps_per_loop,
            seconds_per_loop=config.seconds_per_loop,
            eval_every=config.eval_every,
            evaluate=evaluate if eval_data is not None else None,
            train_logs=self._train_metrics,
            actions=actions,
            agree=self._agreed_seconds,
        )
        self._progress = progress
        try:
            state = controller.run(start)
        finally:
            self._progress = None
            self.summaries.close()
        history.step = state.step
        history.stop_reason = state.stop_reason
        history.train = next(a for a in actions if isinstance(a, TrainLogAction)).last
        history.eval = evaluations[-1] if evaluations else {}
        return history
