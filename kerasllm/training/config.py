"""`TrainerConfig`: every knob of a training run, validated in one place."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kerasllm import hardware
from kerasllm.utils.files import atomic_write_text

DECAYS = ("constant", "linear", "cosine", "inverse_sqrt")
PRECISIONS = ("auto", *hardware.PRECISIONS)
WEIGHT_DECAY_GROUPS = ("norm", "bias", "embedding")
MODES = ("auto", "min", "max")


def resolve_mode(mode: str, metric: str) -> str:
    """`mode` ("auto", "min" or "max") with "auto" resolved from the metric's name: "min" for
    losses and perplexities, "max" for everything else (accuracy, F1, BLEU, ...)."""
    if mode != "auto":
        return mode
    name = metric.lower()
    return "min" if ("loss" in name or "perplexity" in name) else "max"


@dataclasses.dataclass
class TrainerConfig:
    """Configuration of a `Trainer` run.

    Steps count optimizer updates; with `accumulation_steps=k` each update consumes k batches.

    Attributes:
        model_dir: where checkpoints (`ckpt-<step>`), the best checkpoint (`best/`) and TensorBoard
            logs (`train/`, `eval/`) go. Rerunning with the same `model_dir` resumes.
        steps: total number of optimizer updates.
        global_batch_size: examples per update across all replicas (before accumulation). Used to
            check the replica split and by dataset functions (`input_context`); None when the data
            is a plain `tf.data.Dataset` whose batches are already global.
        learning_rate: peak learning rate (reached after warmup).
        warmup_steps: linear warmup from 0 to `learning_rate`.
        decay: after warmup, "constant", "linear" (to `final_learning_rate` at `steps`, or
            when `max_train_seconds` runs out if sooner), "cosine" (likewise) or "inverse_sqrt"
            (`lr * sqrt(warmup / step)`).
        final_learning_rate: learning rate at the end of linear or cosine decay.
        weight_decay: decoupled (AdamW) weight decay; 0 disables it.
        weight_decay_exclude: groups of weights without weight decay, any of "norm" (LayerNorm and
            RMSNorm scales and offsets), "bias" (every bias) and "embedding" (token, position and
            segment embeddings).
        beta_1, beta_2, epsilon: Adam's parameters.
        clipnorm: clip the gradient (all replicas summed) to this global norm; None disables it.
        accumulation_steps: batches whose gradients are summed before each update.
        precision: "auto" (the default: the fastest for the hardware, see `kerasllm.hardware`:
            "mixed_bfloat16" on CPUs with AMX / AVX-512 BF16 and on GPUs of compute capability
            >= 8.0, "mixed_float16" on 7.x GPUs, "float32" otherwise; with a built model, its
            own policy), "float32", "mixed_bfloat16" or "mixed_float16" (with dynamic loss
            scaling).
        jit_compile: compile the forward and backward pass with XLA: True, False or "auto"
            (the default: on for GPUs and TPUs, off on CPUs, where XLA does not use the
            bfloat16 units and measured no faster in float32).
        steps_per_loop: most updates run inside one `tf.function` call between host-side events
            (logging, evaluation, checkpoints cut loops shorter).
        seconds_per_loop: about the longest one such call may run: after each call the next
            runs no more updates than fit in this many seconds at the measured rate (at least
            one). The host only reacts between calls, so this bounds how long Ctrl-C or
            SIGTERM waits before the checkpoint is saved, and how stale the progress display
            gets. None: only `steps_per_loop` limits a call.
        checkpoint_every: write a checkpoint every N updates (and always at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        eval_every: evaluate every N updates (None: only at the end, when eval data is given).
            One evaluation period is what Keras callbacks given to `Trainer.fit` see as an
            epoch.
        eval_steps: batches per evaluation (None: the whole evaluation set).
        log_every: write training summaries and refresh the progress bar every N updates.
        label_smoothing: label smoothing of the cross-entropy objectives.
        seed: seeds Python and NumPy (where Keras draws initializer and dropout seeds) before the
            model is built.
        best_metric: evaluation metric that selects the checkpoint copied to `model_dir/best`
            (e.g. "accuracy", "perplexity", "loss"); None keeps no best checkpoint.
        best_mode: "max", "min" or "auto" ("min" for loss and perplexity, else "max").
        early_stopping_patience: stop training (with a checkpoint) once
            `early_stopping_metric` has not improved for this many evaluations in a row; None
            never stops early. Needs `eval_every` (evaluations during training).
        early_stopping_metric: the monitored value, named as in the logs Keras callbacks see:
            "val_loss", "val_accuracy", ... for evaluation metrics, "loss" for the training
            loss of the evaluation period.
        early_stopping_min_delta: the smallest change that counts as an improvement.
        early_stopping_mode: "max", "min" or "auto" (as `best_mode`, from the metric's name).
        init_checkpoint: weights to start from when `model_dir` has no checkpoint yet: a kerasllm
            training checkpoint (directory or prefix) or a Keras `.weights.h5` file. Only weights
            whose paths match are loaded (e.g. a pretrained backbone under a new head).
        freeze_backbone: train only the task head (and LoRA adapters).
        freeze_layers: freeze the embeddings and the lowest N transformer blocks.
        layerwise_lr_decay: multiply the learning rate of each block by this factor per level
            below the top (embeddings lowest); None disables it.
        lora_rank: add LoRA adapters of this rank to the attention query and value projections and
            train only them and the head; None disables LoRA.
        lora_alpha: LoRA scaling numerator (the update is scaled by `lora_alpha / lora_rank`);
            defaults to `lora_rank`.
        profile_steps: (first, last) update numbers between which a TensorBoard profiler trace
            is recorded; None records none.
        max_train_seconds: stop (with a checkpoint) once `fit` has trained this long, even before
            `steps`; a time budget. Linear and cosine decay then end when the budget runs out
            (the step is re-estimated from the measured step rate as training goes), so a
            budgeted run still anneals. None: no limit.
        verbose: 1 shows a progress display (one line rewritten about every 2 s on a
            terminal; a plain line about every 15 s when the output is redirected), 2 one line
            per log interval, 0 nothing.

    Example:
    >>> config = TrainerConfig(model_dir="/tmp/run", steps=100, learning_rate=3e-4)
    >>> config.warmup_steps, config.decay
    (0, 'linear')
    """

    model_dir: str
    steps: int
    global_batch_size: int | None = None
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay: str = "linear"
    final_learning_rate: float = 0.0
    weight_decay: float = 0.01
    weight_decay_exclude: tuple[str, ...] = WEIGHT_DECAY_GROUPS
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clipnorm: float | None = 1.0
    accumulation_steps: int = 1
    precision: str = "auto"
    jit_compile: bool | str = "auto"
    steps_per_loop: int = 100
    seconds_per_loop: float | None = 2.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int | None = None
    eval_steps: int | None = None
    log_every: int = 100
    label_smoothing: float = 0.0
    seed: int = 0
    best_metric: str | None = None
    best_mode: str = "auto"
    early_stopping_patience: int | None = None
    early_stopping_metric: str = "val_loss"
    early_stopping_min_delta: float = 0.0
    early_stopping_mode: str = "auto"
    init_checkpoint: str | None = None
    freeze_backbone: bool = False
    freeze_layers: int = 0
    layerwise_lr_decay: float | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    profile_steps: tuple[int, int] | None = None
    max_train_seconds: float | None = None
    verbose: int = 1

    def __post_init__(self):
        self.model_dir = str(self.model_dir)
        self.weight_decay_exclude = tuple(self.weight_decay_exclude)
        if self.profile_steps is not None:
            self.profile_steps = tuple(self.profile_steps)
        self.validate()

    def validate(self) -> None:
        """Raises a ValueError naming the first invalid field and what is allowed."""

        def positive_int(name, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")

        if not self.model_dir:
            raise ValueError("`model_dir` must be a non-empty path.")
        for name in (
            "steps",
            "accumulation_steps",
            "steps_per_loop",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
        ):
            positive_int(name)
        for name in ("global_batch_size", "eval_every", "eval_steps", "lora_rank"):
            positive_int(name, allow_none=True)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be an integer >= 0; got {self.warmup_steps!r}.")
        if not isinstance(self.freeze_layers, int) or self.freeze_layers < 0:
            raise ValueError(
                f"`freeze_layers` must be an integer >= 0; got {self.freeze_layers!r}."
            )
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0; got {self.learning_rate!r}.")
        if not 0 <= self.final_learning_rate <= self.learning_rate:
            raise ValueError(
                f"`final_learning_rate` must be in [0, learning_rate={self.learning_rate}]; "
                f"got {self.final_learning_rate!r}."
            )
        if self.decay not in DECAYS:
            raise ValueError(f"`decay` must be one of {list(DECAYS)}; got {self.decay!r}.")
        if self.decay == "inverse_sqrt" and self.warmup_steps == 0:
            raise ValueError("decay='inverse_sqrt' needs `warmup_steps` > 0.")
        hardware.check(self.precision, self.jit_compile)
        if self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0; got {self.weight_decay!r}.")
        unknown = set(self.weight_decay_exclude) - set(WEIGHT_DECAY_GROUPS)
        if unknown:
            raise ValueError(
                f"`weight_decay_exclude` may only contain {list(WEIGHT_DECAY_GROUPS)}; "
                f"got {sorted(unknown)}."
            )
        if self.max_train_seconds is not None and self.max_train_seconds <= 0:
            raise ValueError(
                f"`max_train_seconds` must be > 0 or None; got {self.max_train_seconds!r}."
            )
        if self.clipnorm is not None and self.clipnorm <= 0:
            raise ValueError(f"`clipnorm` must be > 0 or None; got {self.clipnorm!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1); got {self.label_smoothing!r}.")
        for name in ("best_mode", "early_stopping_mode"):
            if getattr(self, name) not in MODES:
                raise ValueError(
                    f"`{name}` must be 'auto', 'min' or 'max'; got {getattr(self, name)!r}."
                )
        patience = self.early_stopping_patience
        if patience is not None:
            if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
                raise ValueError(
                    f"`early_stopping_patience` must be a positive integer or None; "
                    f"got {patience!r}."
                )
            if self.eval_every is None:
                raise ValueError(
                    "`early_stopping_patience` needs `eval_every`: early stopping compares "
                    "evaluations made during training."
                )
        if not isinstance(self.early_stopping_metric, str) or not self.early_stopping_metric:
            raise ValueError(
                "`early_stopping_metric` must be a metric name such as 'val_loss'; "
                f"got {self.early_stopping_metric!r}."
            )
        if not self.early_stopping_min_delta >= 0:
            raise ValueError(
                f"`early_stopping_min_delta` must be >= 0; got {self.early_stopping_min_delta!r}."
            )
        if self.seconds_per_loop is not None and not self.seconds_per_loop > 0:
            raise ValueError(
                f"`seconds_per_loop` must be > 0 or None; got {self.seconds_per_loop!r}."
            )
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise ValueError(
                f"`layerwise_lr_decay` must be in (0, 1] or None; got {self.layerwise_lr_decay!r}."
            )
        if self.lora_alpha is not None and self.lora_rank is None:
            raise ValueError("`lora_alpha` needs `lora_rank`.")
        steps = self.profile_steps
        if steps is not None and (len(steps) != 2 or not 0 < steps[0] < steps[1]):
            raise ValueError(
                f"`profile_steps` must be (first, last) with 0 < first < last; got {steps!r}."
            )
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"`verbose` must be 0, 1 or 2; got {self.verbose!r}.")

    @property
    def resolved_best_mode(self) -> str:
        """`best_mode` with "auto" resolved from the metric's name."""
        return resolve_mode(self.best_mode, self.best_metric or "")

    @property
    def resolved_early_stopping_mode(self) -> str:
        """`early_stopping_mode` with "auto" resolved from the metric's name."""
        return resolve_mode(self.early_stopping_mode, self.early_stopping_metric)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        """Writes the config as JSON (the Trainer keeps one in `model_dir/config.json`)."""
        atomic_write_text(path, self.to_json() + "\n")
