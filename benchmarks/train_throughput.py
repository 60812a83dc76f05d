"""Training throughput: kerasllm vs KerasHub on identical BERT- and GPT-shaped models.

Both sides are trained by the same XLA-compiled AdamW step, with the same dense vocabulary head
(a `Dense(vocabulary_size)` on the sequence output) and sparse cross-entropy over every position,
so the only difference is the backbone. Rounds alternate between the two to share any machine
noise; the median round counts. Model FLOP utilization (MFU) is measured against the float32
matmul peak of this machine, measured here too.

    python benchmarks/train_throughput.py [--steps 10] [--rounds 3]

The last line printed is one JSON object:
{"bert": {"ours": TOKENS_PER_S, "keras_hub": TOKENS_PER_S, "ratio": R, "mfu": F}, "gpt": {...}}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasllm.models import Decoder, Encoder  # noqa: E402

CONFIG = dict(
    vocabulary_size=8000, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024
)
SEQUENCE_LENGTH = 128
BATCH_SIZE = 16


def build(family: str, side: str) -> keras.Model:
    """Backbone + dense vocabulary head, taking the backbone's input dict."""
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
            return self.head(out["sequence_output"] if isinstance(out, dict) else out)

    return WithHead()


def make_batch(family: str):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, CONFIG["vocabulary_size"], (BATCH_SIZE, SEQUENCE_LENGTH)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    if family == "bert":
        inputs["segment_ids"] = np.zeros_like(ids)
    return {k: tf.constant(v) for k, v in inputs.items()}, tf.constant(np.roll(ids, -1, axis=1))


def make_train_step(model: keras.Model):
    optimizer = keras.optimizers.AdamW(learning_rate=1e-4)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True)
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def time_steps(step, batch, steps: int) -> float:
    step(*batch).numpy()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(*batch)
    loss.numpy()
    return time.perf_counter() - start


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """Float32 FLOP/s of a large XLA matmul: the practical peak of this machine."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    args = parser.parse_args()
    peak = matmul_peak_flops()
    print(f"measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    results = {}
    tokens = BATCH_SIZE * SEQUENCE_LENGTH * args.steps
    for family in ("bert", "gpt"):
        batch = make_batch(family)
        steps = {side: make_train_step(build(family, side)) for side in ("ours", "keras_hub")}
        rates = {side: [] for side in steps}
        for _ in range(args.rounds):
            for side, step in steps.items():
                rates[side].append(tokens / time_steps(step, batch, args.steps))
        ours = statistics.median(rates["ours"])
        theirs = statistics.median(rates["keras_hub"])
        mfu = ours * training_flops_per_token(family) / peak
        results[family] = {
            "ours": round(ours, 1),
            "keras_hub": round(theirs, 1),
            "ratio": round(ours / theirs, 3),
            "mfu": round(mfu, 3),
        }
        print(
            f"{family}: ours {ours:,.0f} tokens/s, KerasHub {theirs:,.0f} tokens/s, "
            f"ratio {ours / theirs:.2f}, MFU {mfu:.1%}  (rounds: {rates})"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
