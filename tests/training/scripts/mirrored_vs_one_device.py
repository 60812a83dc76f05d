"""Trains the same tiny model on one CPU device and on two logical CPU devices under
MirroredStrategy (8 examples per update in every variant, one with gradient accumulation) and
prints the largest weight difference of each variant as JSON.

Usage: python mirrored_vs_one_device.py MODEL_DIR
"""

import json
import sys

import tensorflow as tf

# Logical devices must be configured before TensorFlow initializes its runtime.
(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from training_helpers import causal_batches, tiny_causal_lm  # noqa: E402

from kerasllm.training import Trainer, TrainerConfig  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 4


def per_replica_batches(global_batch):
    def batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return causal_batches(batch_size=context.get_per_replica_batch_size(global_batch))

    return batches


def train(model_dir, strategy, data, global_batch=GLOBAL_BATCH, accumulation_steps=1):
    config = TrainerConfig(
        model_dir,
        steps=STEPS,
        learning_rate=1e-2,
        global_batch_size=global_batch,
        accumulation_steps=accumulation_steps,
        verbose=0,
        precision="float32",  # named: the comparisons mean the same on any machine
    )
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, strategy=strategy)
    history = trainer.fit(data)
    return trainer, history, [v.numpy() for v in trainer.model.weights]


def main(root):
    one, _, reference = train(
        f"{root}/one", tf.distribute.OneDeviceStrategy("/cpu:0"), causal_batches(batch_size=8)
    )
    results = {}
    variants = {
        # name: (data, global batch, accumulation steps); 8 examples per update in each
        "dataset": (causal_batches(batch_size=8), 8, 1),
        "function_accumulated": (per_replica_batches(4), 4, 2),
    }
    for name, (data, global_batch, accumulation) in variants.items():
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        trainer, history, weights = train(
            f"{root}/{name}", strategy, data, global_batch, accumulation
        )
        results[name] = {
            "replicas": trainer.num_replicas,
            "step": history["step"],
            "max_difference": max(float(np.max(np.abs(a - b))) for a, b in zip(weights, reference)),
        }
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
