"""Helpers shared by the training tests and their subprocess scripts: tiny models, deterministic
batches, running a script in a fresh Python."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasllm import zoo
from kerasllm.testing import TINY
from kerasllm.training import TrainerConfig

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def causal_batches(num_examples=32, length=8, batch_size=8, seed=0, pad_every=3):
    """A dataset of causal-LM `(x, y, sample_weight)` batches with some right padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, TINY["vocabulary_size"], (num_examples, length + 1)).astype("int32")
    padding = np.ones((num_examples, length), "int32")
    padding[::pad_every, length // 2 :] = 0
    inputs = {"token_ids": ids[:, :-1] * padding, "padding_mask": padding}
    labels = ids[:, 1:] * padding
    return tf.data.Dataset.from_tensor_slices((inputs, labels, padding.astype("float32"))).batch(
        batch_size
    )


# One block keeps tracing, which dominates these tests, short.
SMALL = {**TINY, "num_layers": 1}


def tiny_causal_lm(**overrides):
    return zoo.get("gpt_tiny", task="causal_lm", weights=None, **{**SMALL, **overrides})


# The reference run that resume, accumulation and kill -9 results are compared with.
REFERENCE_STEPS = 8


def reference_config(model_dir, **overrides) -> TrainerConfig:
    config = dict(steps=REFERENCE_STEPS, learning_rate=1e-2, checkpoint_every=4, log_every=4)
    # Named, not "auto": subprocesses (resumable_run.py) must match the in-process reference on
    # any machine.
    config.update(precision="float32", jit_compile=False)
    return TrainerConfig(str(model_dir), **{**config, "verbose": 0, **overrides})


def reference_data(batch_size=8):
    """Five global batches of 8 (repeated by the Trainer); smaller batches split them evenly."""
    return causal_batches(num_examples=40, batch_size=batch_size)


def run_script(name, *args, env=None, timeout=240):
    """Runs `tests/training/scripts/NAME` in a fresh Python (TensorFlow settings such as logical
    devices must be made before TensorFlow initializes)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
