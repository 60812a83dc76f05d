"""The reference training run (`training_helpers`), slowed down so that it can be killed, and
rerun: the same command resumes.

Usage: python resumable_run.py MODEL_DIR SECONDS_PER_BATCH

Prints `RESULT {"start_step": ..., "step": ...}` and writes MODEL_DIR/weights.npz at the end.
"""

import json
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from training_helpers import reference_config, reference_data, tiny_causal_lm  # noqa: E402

from kerasllm.training import Trainer  # noqa: E402


def data(seconds_per_batch=0.0):
    """The reference batches; optionally slowed down so that a test can kill the run midway."""
    batches = reference_data()
    if not seconds_per_batch:
        return batches

    def slow(x, y, w):
        delay = tf.numpy_function(
            lambda: np.float32(time.sleep(seconds_per_batch) or 0.0), [], tf.float32
        )
        return x, y, w + 0.0 * delay

    return batches.map(slow)


def main(model_dir, seconds_per_batch):
    trainer = Trainer(tiny_causal_lm, "causal_lm", reference_config(model_dir), "one_device")
    start = trainer.step
    history = trainer.fit(data(float(seconds_per_batch)))
    np.savez(f"{model_dir}/weights.npz", *[v.numpy() for v in trainer.model.weights])
    print("RESULT " + json.dumps({"start_step": start, "step": history["step"]}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
