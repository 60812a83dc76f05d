"""Generation throughput: kerasllm `CausalLM.generate` vs KerasHub `GPT2CausalLM.generate`.

Both models have the identical GPT-2-shaped backbone (4 layers, hidden 256, 4 heads,
feed-forward 1,024, vocabulary 8,000, pre-norm, tanh GELU, learned positions, tied
embeddings), KerasHub's with our weights copied in (so both compute the same function; the
script prints the share of identical generated tokens), and decode greedily, 112 new tokens
after a 16-token prompt, no early stop. Ours runs its XLA-compiled loop; KerasHub runs its
default `generate` (after `compile()`, jit_compile resolves to False for this model, so its
loop is a plain TensorFlow graph), and, on a separate line, its loop with jit_compile=True.
Compilation is excluded (one warm-up call each); timed rounds alternate between the models to
share machine noise and the median round counts.

    python benchmarks/generate_throughput.py [--rounds 5] [--batch-sizes 1 8] [--floor]
                                             [--profile]

`--floor` also times a bare loop of the model's matmuls alone (same weights, same shapes,
no attention, norms or sampling): the lower bound of one decoding step on this machine.
`--profile` traces one of our generate calls per batch size with XLA's kernel-level
profiler and prints where a decoding step spends its time (top kernels).

The last line printed is one JSON object:
{"batch_1": {"ours": TOKENS_PER_S, "keras_hub": TOKENS_PER_S, "ratio": R}, "batch_8": {...}}
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "--profile" in sys.argv:  # must be set before TensorFlow starts XLA
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
    )

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasllm.models import CausalLM, Decoder  # noqa: E402

CONFIG = dict(
    vocabulary_size=8000,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=1024,
)
PROMPT_LENGTH = 16
NEW_TOKENS = 112


def copy_weights(ours, theirs):
    """Gives KerasHub's GPT-2 our weights (same order and sizes; KerasHub splits heads)."""
    pairs = list(zip(ours.backbone.weights, theirs.backbone.weights, strict=True))
    for mine, their in pairs:
        their.assign(np.reshape(mine.numpy(), their.shape))


def build_models():
    ours = CausalLM(
        Decoder(
            **CONFIG,
            norm_first=True,
            activation="gelu_approximate",
            layer_norm_epsilon=1e-5,
            dropout=0.0,
        )
    )
    backbone = keras_hub.models.GPT2Backbone(**CONFIG, dropout=0.0)
    theirs = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    # Default `compile` (what `generate` does out of the box): jit_compile resolves to False
    # here, so KerasHub's loop runs as a plain TensorFlow graph.
    theirs.compile(sampler="greedy")
    copy_weights(ours, theirs)  # the same function, so both generate the same tokens
    # The same backbone with KerasHub's loop XLA-compiled, reported beside the default.
    theirs_xla = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    theirs_xla.compile(sampler="greedy", jit_compile=True)
    return ours, theirs, theirs_xla


def runners(ours, theirs, theirs_xla, batch_size):
    prompts = np.random.default_rng(batch_size).integers(
        1, CONFIG["vocabulary_size"], size=(batch_size, PROMPT_LENGTH)
    )
    total = PROMPT_LENGTH + NEW_TOKENS
    padded = np.zeros((batch_size, total), "int32")
    padded[:, :PROMPT_LENGTH] = prompts
    mask = np.arange(total)[None, :] < PROMPT_LENGTH
    keras_hub_inputs = {"token_ids": padded, "padding_mask": np.repeat(mask, batch_size, 0)}

    def run_ours():
        out = ours.generate(prompts, max_new_tokens=NEW_TOKENS, stop_token_ids=None)
        assert out.shape == (batch_size, total), out.shape
        return out

    def keras_hub_runner(model):
        def run():
            out = model.generate(keras_hub_inputs, stop_token_ids=None)["token_ids"]
            assert out.shape == (batch_size, total)
            return np.asarray(out)

        return run

    return {
        "ours": run_ours,
        "keras_hub": keras_hub_runner(theirs),
        "keras_hub_xla": keras_hub_runner(theirs_xla),
    }


def matmul_floor(ours, batch_size, steps=NEW_TOKENS):
    """Seconds per step of a loop doing only the model's matmuls on its own weights."""
    hidden, width = CONFIG["hidden_dim"], CONFIG["intermediate_dim"]
    embeddings = ours.backbone.token_embedding.embeddings
    kernels = [
        w
        for w in ours.backbone.weights
        if len(w.shape) == 2 and "embedding" not in w.path  # the blocks' dense kernels
    ]

    @tf.function(jit_compile=True)
    def loop(x):
        def body(i, x):
            h, wide = x, tf.zeros((batch_size, width))
            for kernel in kernels:  # q, k, v, o, feed-forward in, feed-forward out; per layer
                out = tf.matmul(h if kernel.shape[0] == hidden else wide, kernel)
                h, wide = (out, wide) if kernel.shape[1] == hidden else (h, out)
            token = tf.argmax(tf.matmul(h, embeddings, transpose_b=True), axis=-1)
            return i + 1, 0.5 * x + 0.5 * tf.gather(embeddings, token)

        return tf.while_loop(lambda i, x: i < steps, body, (0, x))[1]

    x = tf.ones((batch_size, CONFIG["hidden_dim"]))
    loop(x).numpy()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        loop(x).numpy()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def profile(ours, batch_size, top=15):
    """Per-step time of the XLA kernels of one generate call, largest first."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    prompts = np.ones((batch_size, PROMPT_LENGTH), "int32")
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        ours.generate(prompts, max_new_tokens=NEW_TOKENS, stop_token_ids=None)
        tf.profiler.experimental.stop()
        totals = collections.Counter()
        for root, _, files in os.walk(logdir):
            for name in (f for f in files if f.endswith(".xplane.pb")):
                space = xplane_pb2.XSpace()
                with open(os.path.join(root, name), "rb") as f:
                    space.ParseFromString(f.read())
                for plane in space.planes:
                    names = {k: v.name for k, v in plane.event_metadata.items()}
                    for line in plane.lines:
                        if "Eigen" not in line.name:  # XLA's intra-op worker threads
                            continue
                        for event in line.events:
                            totals[names.get(event.metadata_id, "?")] += event.duration_ps
    for skip in ("ThunkExecutor::Execute",):
        totals.pop(skip, None)
    totals = {k: v for k, v in totals.items() if not k.startswith("while")}
    kernels_ms = sum(totals.values()) / 1e9 / NEW_TOKENS
    print(f"batch {batch_size}: XLA kernels {kernels_ms:.2f} ms/step; largest:")
    for name, ps in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {name:40s} {ps / 1e6 / NEW_TOKENS:8.1f} us/step")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--floor", action="store_true", help="also time a bare matmul loop")
    parser.add_argument("--profile", action="store_true", help="print per-kernel step times")
    args = parser.parse_args()

    ours, theirs, theirs_xla = build_models()
    print(
        f"parameters: ours {ours.count_params():,}, keras_hub {theirs.count_params():,}; "
        f"prompt {PROMPT_LENGTH}, new tokens {NEW_TOKENS}, greedy"
    )
    results = {}
    for batch_size in args.batch_sizes:
        fns = runners(ours, theirs, theirs_xla, batch_size)
        outputs = {}
        for name, fn in fns.items():
            start = time.perf_counter()
            outputs[name] = fn()
            elapsed = time.perf_counter() - start
            print(f"batch {batch_size}: {name} first call (trace + compile) {elapsed:.1f}s")
        same = (outputs["ours"] == outputs["keras_hub"])[:, PROMPT_LENGTH:].mean()
        print(f"batch {batch_size}: generated tokens identical to KerasHub's: {same:.1%}")
        times = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        tokens = batch_size * NEW_TOKENS
        row = {name: round(tokens / statistics.median(t), 1) for name, t in times.items()}
        xla = row.pop("keras_hub_xla")
        row["ratio"] = round(row["ours"] / row["keras_hub"], 2)
        results[f"batch_{batch_size}"] = row
        print(
            f"batch {batch_size}: KerasHub with jit_compile=True {xla} tokens/s; "
            f"ours / that = {row['ours'] / xla:.2f}"
        )
        line = ", ".join(
            f"{name} {statistics.median(t) / NEW_TOKENS * 1e3:.2f} ms/step "
            f"(rounds: {' '.join(f'{x:.2f}s' for x in t)})"
            for name, t in times.items()
        )
        print(f"batch {batch_size}: {line}")
        if args.floor:
            floor = matmul_floor(ours, batch_size)
            print(f"batch {batch_size}: bare matmul loop {floor * 1e3:.2f} ms/step")
        if args.profile:
            profile(ours, batch_size)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
