"""Training throughput: kerasllm's `Trainer` vs KerasHub through Keras `fit`, on identical BERT-
and GPT-shaped models, at every precision x compilation setting, in one run.

Each side trains the way its users train it: ours with `kerasllm.training.Trainer`, KerasHub's
backbones with `model.compile(...)` + `model.fit`. The settings are the same on both sides:
one dense vocabulary head on the sequence output (float32 logits), cross-entropy over every
position, AdamW (learning rate 1e-4, weight decay 0.01, global-norm clipping at 1.0), the
same batches, and `--steps` updates per compiled call (our `steps_per_loop`, Keras'
`steps_per_execution`). Settings: {float32, mixed_bfloat16} x {XLA, no XLA}, plus each side's
out-of-the-box default: ours `TrainerConfig`'s (`precision="auto"`, `jit_compile="auto"`, see
`kerasllm.hardware`), KerasHub's Keras `compile` defaults (float32, `jit_compile="auto"`,
which is XLA on this backend, one step per call).

Each side and setting trains in one `fit` of `(rounds + 1) x steps` updates (a new `fit`
retraces, on both sides), all in threads that take turns by windows of `--steps` updates, so
the rounds alternate between every side and setting and share the machine's noise; only one
trains at any time. Every window after the first (which compiles) is timed by the same Keras
callback on both sides, from its first update's start to its last one's end (with the loss on
the host); the median window counts.
MFU is against the measured matmul peak of the setting's precision and compilation.

    python benchmarks/train_throughput.py [--steps 4] [--rounds 3] [--families bert gpt]

Reported: (a) the ratio ours/KerasHub at each identical setting, (b) each side's best setting
against the other's best, (c) each side's default against the other's. The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasllm import hardware  # noqa: E402
from kerasllm.models import Decoder, Encoder  # noqa: E402
from kerasllm.training import Trainer, TrainerConfig  # noqa: E402

CONFIG = dict(
    vocabulary_size=8000, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024
)
SEQUENCE_LENGTH = 128
BATCH_SIZE = 16
SETTINGS = [(p, x) for p in ("float32", "mixed_bfloat16") for x in (True, False)]
DEFAULT = "default"


def build(family: str, side: str) -> keras.Model:
    """Backbone + dense vocabulary head (float32 logits), built on one batch, under the
    current global dtype policy."""
    if side == "ours":
        common = dict(**CONFIG, dropout=0.1, max_sequence_length=512)
        if family == "bert":
            backbone = Encoder(**common)
        else:
            backbone = Decoder(
                **{**common, "max_sequence_length": 1024},
                norm_first=True,
                activation="gelu_approximate",
                layer_norm_epsilon=1e-5,
            )
    elif family == "bert":
        backbone = keras_hub.models.BertBackbone(**CONFIG, dropout=0.1)
    else:
        backbone = keras_hub.models.GPT2Backbone(**CONFIG, dropout=0.1)
    head = keras.layers.Dense(CONFIG["vocabulary_size"], name="vocabulary_head")

    class WithHead(keras.Model):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, head

        def call(self, inputs, training=None):
            out = self.backbone(inputs, training=training)
            logits = self.head(out["sequence_output"] if isinstance(out, dict) else out)
            return keras.ops.cast(logits, "float32")

    model = WithHead()
    model(make_batch(family)[0])
    return model


def make_batch(family: str):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, CONFIG["vocabulary_size"], (BATCH_SIZE, SEQUENCE_LENGTH)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    if family == "bert":
        inputs["segment_ids"] = np.zeros_like(ids)
    labels = np.roll(ids, -1, axis=1)
    return inputs, labels, np.ones(labels.shape, "float32")


def dataset(family: str) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensors(make_batch(family)).repeat()


class Turns:
    """Lets the runners' `fit`s (one thread each) train one window at a time, in rotation, so
    the rounds of every side and setting alternate and share the machine's noise, while each
    side still trains in one `fit` (a new `fit` retraces, on both sides)."""

    def __init__(self, count: int):
        self._condition = threading.Condition()
        self._turn = 0
        self._finished: set[int] = set()
        self._count = count

    def wait(self, index: int) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._turn == index)

    def pass_on(self, index: int, finished: bool = False) -> None:
        with self._condition:
            if finished:
                self._finished.add(index)
            if len(self._finished) < self._count:
                turn = (index + 1) % self._count
                while turn in self._finished:
                    turn = (turn + 1) % self._count
                self._turn = turn
            self._condition.notify_all()


class CallTimer(keras.callbacks.Callback):
    """(start, end) of every compiled call of a `fit` (from the call's start to the moment its
    loss reached the host, the same way for both sides), taking turns by windows of
    `calls_per_window` calls."""

    def __init__(self, turns: Turns, index: int, calls_per_window: int, windows: int):
        super().__init__()
        self.calls: list[tuple[float, float]] = []
        self.turns, self.index = turns, index
        self.calls_per_window, self.windows = calls_per_window, windows
        self._began = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if len(self.calls) % self.calls_per_window == 0:
            self.turns.wait(self.index)
        self._began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(np.asarray(keras.ops.convert_to_numpy((logs or {}).get("loss", 0.0))))
        self.calls.append((self._began, time.perf_counter()))
        done, rest = divmod(len(self.calls), self.calls_per_window)
        if not rest and done < self.windows:
            # After the last window the turn passes once `fit` has returned (after the
            # checkpoint our side writes at the end), in `run_in_turns`.
            self.turns.pass_on(self.index)

    def window_seconds(self) -> list[float]:
        """Seconds of each window (the first, which traced and compiled, left out): first
        call's start to last call's end, so time spent between calls (one step per call)
        counts."""
        size = self.calls_per_window
        windows = [self.calls[i : i + size] for i in range(0, len(self.calls), size)]
        return [w[-1][1] - w[0][0] for w in windows[1:] if len(w) == size]


def run_in_turns(runners: list, steps: int, windows: int) -> list[list[float]]:
    """Trains every runner `windows` windows of `steps` updates, one window at a time in
    rotation; the seconds of each runner's timed windows."""
    turns = Turns(len(runners))
    timers = [
        CallTimer(turns, i, steps // runner.steps_per_call, windows)
        for i, runner in enumerate(runners)
    ]
    errors: list[BaseException] = []

    def train(runner, timer):
        try:
            runner.run(steps * windows, timer)
        except BaseException as error:  # the others must not wait for this one forever
            errors.append(error)
        turns.pass_on(timer.index, finished=True)

    threads = [threading.Thread(target=train, args=pair) for pair in zip(runners, timers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [timer.window_seconds() for timer in timers]


class Ours:
    """kerasllm's Trainer on one setting."""

    def __init__(self, family: str, precision: str, jit_compile, steps_per_call: int):
        self.directory = tempfile.mkdtemp(prefix="train_throughput_")
        fields = dict(
            model_dir=self.directory,
            steps=1,
            learning_rate=1e-4,
            decay="constant",
            checkpoint_every=10**9,
            keep_checkpoints=1,
            log_every=steps_per_call,
            steps_per_loop=steps_per_call,
            seconds_per_loop=None,
            verbose=0,
        )
        if precision != DEFAULT:  # else the config's defaults: "auto"
            fields.update(precision=precision, jit_compile=jit_compile)
        self.trainer = Trainer(
            lambda: build(family, "ours"), "causal_lm", TrainerConfig(**fields), "one_device"
        )
        self.data = dataset(family)
        self.steps_per_call = steps_per_call

    @property
    def setting(self) -> tuple[str, bool]:
        return self.trainer.config.precision, self.trainer.config.jit_compile

    def run(self, steps: int, timer: keras.callbacks.Callback) -> None:
        """Trains `steps` more updates in one `fit`."""
        self.trainer.config.steps = self.trainer.step + steps
        self.trainer.fit(self.data, callbacks=[timer])
        shutil.rmtree(self.directory, ignore_errors=True)


class Theirs:
    """A KerasHub backbone trained by Keras `fit` on one setting."""

    def __init__(self, family: str, precision: str, jit_compile, steps_per_call: int):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32" if precision == DEFAULT else precision)
        try:
            self.model = build(family, "keras_hub")
        finally:
            keras.config.set_dtype_policy(previous)
        optimizer = keras.optimizers.AdamW(
            learning_rate=1e-4, weight_decay=0.01, global_clipnorm=1.0, epsilon=1e-6
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if precision == DEFAULT:  # Keras' compile defaults: jit_compile="auto", 1 step per call
            self.model.compile(optimizer=optimizer, loss=loss)
            self.steps_per_call = 1
        else:
            self.model.compile(
                optimizer=optimizer,
                loss=loss,
                jit_compile=jit_compile,
                steps_per_execution=steps_per_call,
            )
            self.steps_per_call = steps_per_call
        self.data = dataset(family)

    @property
    def setting(self) -> tuple[str, bool]:
        return self.model.dtype_policy.name, bool(self.model.jit_compile)

    def run(self, steps: int, timer: keras.callbacks.Callback) -> None:
        self.model.fit(self.data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])


def training_flops_per_token(family: str) -> float:
    """6 x (matmul parameters) + attention score/value matmuls, forward + backward."""
    h, f, layers, v, t = (
        CONFIG["hidden_dim"],
        CONFIG["intermediate_dim"],
        CONFIG["num_layers"],
        CONFIG["vocabulary_size"],
        SEQUENCE_LENGTH,
    )
    matmul_params = layers * (4 * h * h + 2 * h * f) + h * v
    attention = layers * 2 * 2 * t * h  # QK^T and PV per token, multiply-add = 2 FLOPs
    return 6 * matmul_params + 3 * attention


def label(setting) -> str:
    precision, jit = setting
    return f"{precision}/{'xla' if jit else 'no-xla'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="updates per timed call")
    parser.add_argument("--rounds", type=int, default=3, help="timed windows per side and setting")
    parser.add_argument("--families", nargs="+", default=["bert", "gpt"], choices=["bert", "gpt"])
    args = parser.parse_args()

    flags = hardware.cpu_flags()
    notable = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    cpu = hardware.cpu_model() or platform.processor()
    print(f"CPU: {cpu}; {os.cpu_count()} logical cores; flags: {' '.join(notable)}")
    print(hardware.detect().describe())
    peaks = {}
    for precision, dtype in (("float32", "float32"), ("mixed_bfloat16", "bfloat16")):
        for jit in (True, False):
            peaks[(precision, jit)] = hardware.matmul_flops(dtype, jit_compile=jit, repeats=10)
            print(f"matmul peak {dtype:8s} {'xla' if jit else 'no-xla':6s}: "
                  f"{peaks[(precision, jit)] / 1e9:,.0f} GFLOP/s")  # fmt: skip

    tokens = BATCH_SIZE * SEQUENCE_LENGTH * args.steps
    results = {}
    for family in args.families:
        runners = {
            (side, setting): cls(family, *setting, args.steps)
            for setting in [*SETTINGS, (DEFAULT, None)]
            for side, cls in (("ours", Ours), ("keras_hub", Theirs))
        }
        seconds = run_in_turns(list(runners.values()), args.steps, args.rounds + 1)
        rates = {key: [tokens / s for s in times] for key, times in zip(runners, seconds)}
        median = {key: statistics.median(values) for key, values in rates.items()}
        flops = training_flops_per_token(family)
        table, out = [], {"identical": {}, "rounds": {}}
        for setting in SETTINGS:
            ours, theirs = median[("ours", setting)], median[("keras_hub", setting)]
            mfu = ours * flops / peaks[setting]
            out["identical"][label(setting)] = {
                "ours": round(ours),
                "keras_hub": round(theirs),
                "ratio": round(ours / theirs, 3),
                "mfu_ours": round(mfu, 3),
                "mfu_keras_hub": round(theirs * flops / peaks[setting], 3),
            }
            table.append(f"  {label(setting):24s} ours {ours:8,.0f}  KerasHub {theirs:8,.0f}  "
                         f"ratio {ours / theirs:5.2f}  MFU ours {mfu:.0%}")  # fmt: skip
        best = {}
        for side in ("ours", "keras_hub"):
            setting = max(SETTINGS, key=lambda s, side=side: median[(side, s)])
            best[side] = (setting, median[(side, setting)])
        defaults = {side: median[(side, (DEFAULT, None))] for side in ("ours", "keras_hub")}
        default_settings = {
            side: label(runners[(side, (DEFAULT, None))].setting) for side in defaults
        }
        out["best"] = {
            side: {"setting": label(s), "tokens_per_second": round(r)}
            for side, (s, r) in best.items()
        }
        out["best"]["ratio"] = round(best["ours"][1] / best["keras_hub"][1], 3)
        out["default"] = {
            side: {"setting": default_settings[side], "tokens_per_second": round(r)}
            for side, r in defaults.items()
        }
        out["default"]["ratio"] = round(defaults["ours"] / defaults["keras_hub"], 3)
        out["rounds"] = {
            f"{side} {label(s)}": [round(r) for r in v] for (side, s), v in rates.items()
        }
        results[family] = out
        print(f"\n{family} (tokens/s, median of {args.rounds} rounds of {args.steps} updates):")
        print("(a) identical settings:")
        print("\n".join(table))
        print(f"(b) best vs best: ours {best['ours'][1]:,.0f} ({label(best['ours'][0])}) vs "
              f"KerasHub {best['keras_hub'][1]:,.0f} ({label(best['keras_hub'][0])}): "
              f"ratio {out['best']['ratio']:.2f}")  # fmt: skip
        print(f"(c) defaults: ours {defaults['ours']:,.0f} ({default_settings['ours']}) vs "
              f"KerasHub {defaults['keras_hub']:,.0f} ({default_settings['keras_hub']}, 1 step "
              f"per call): ratio {out['default']['ratio']:.2f}", flush=True)  # fmt: skip
    results["cpu"] = {"model": cpu, "flags": notable}
    results["matmul_gflops"] = {label(k): round(v / 1e9) for k, v in peaks.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
