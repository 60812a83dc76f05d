"""One worker of a two-process MultiWorkerMirroredStrategy run (TF_CONFIG comes from the test).

Usage: python multi_worker.py MODEL_DIR OUTPUT.npz
"""

import json
import sys

from kerasllm.training import Trainer, TrainerConfig, get_strategy

# The strategy first: collectives must be configured before TensorFlow initializes.
strategy = get_strategy("auto")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from training_helpers import causal_batches, tiny_causal_lm  # noqa: E402

GLOBAL_BATCH = 8


def per_replica_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
    # Each worker reads its own shard.
    data = causal_batches(num_examples=64, batch_size=context.get_per_replica_batch_size(8))
    return data.shard(context.num_input_pipelines, context.input_pipeline_id)


def main(model_dir, output):
    config = TrainerConfig(
        model_dir,
        steps=6,
        learning_rate=1e-2,
        global_batch_size=GLOBAL_BATCH,
        checkpoint_every=3,
        # Never reached, but runs the time-budget path: the workers agree on the elapsed time
        # between loops (a collective that must neither hang nor desynchronize the replicas).
        max_train_seconds=600,
        steps_per_loop=2,
        verbose=0,
        precision="float32",  # named: the comparisons mean the same on any machine
    )
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, strategy=strategy)
    eval_data = causal_batches(num_examples=16, batch_size=8)
    before = trainer.evaluate(eval_data)["loss"]
    history = trainer.fit(per_replica_batches, eval_data)
    np.savez(output, *[v.numpy() for v in trainer.model.weights])
    report = {
        "strategy": type(strategy).__name__,
        "replicas": trainer.num_replicas,
        "is_chief": trainer.is_chief,
        "checkpoint_dir": trainer.checkpointer.manager.directory,
        "step": history["step"],
        "loss_before": before,
        "loss_after": history["eval"]["loss"],
    }
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
