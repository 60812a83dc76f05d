"""Generation throughput: kerasllm `CausalLM.generate` vs KerasHub's `GPT2CausalLM` and
`LlamaCausalLM`, at {float32, mixed_bfloat16} x {XLA, no XLA}, in one run.

Two families, each the identical backbone on both sides with the same weights (so both
compute the same function; the script prints the share of identical generated tokens):

- `gpt`: GPT-2-shaped, 4 layers, hidden 256, 4 heads, feed-forward 1,024, vocabulary 8,000,
  pre-norm, tanh GELU, learned positions, tied embeddings (our weights copied into KerasHub's
  `GPT2Backbone`);
- `llama`: Llama-family, 4 layers, hidden 256, 8 query / 4 key-value heads, SwiGLU 688,
  RMSNorm, rotary positions, untied output (KerasHub's `LlamaBackbone` weights copied into
  ours).

Greedy, 16-token prompts, 112 new tokens, no early stop. Compilation is excluded (one warm-up
call each); timed rounds alternate between every variant of a batch size, so all share the
machine's noise, and each variant's fastest round counts (on a shared machine other processes
only ever add time; the median is printed too). The variants:

- ours, XLA: `CausalLM.generate` (its decoding loop is always XLA-compiled);
- ours, no XLA: the same loop (`kerasllm.generation.decode_causal`) in a plain `tf.function`
  with the core-TensorFlow cache writes, i.e. what an exported SavedModel runs;
- KerasHub, XLA / no XLA: `generate` after `compile(sampler="greedy", jit_compile=...)`;
- each at float32 and at mixed_bfloat16 (the global dtype policy while the models are built).

Reported per family and batch size: (a) ours / KerasHub at each identical setting, (b) each
side's best setting against the other's best, (c) each side's out-of-the-box default (ours:
`generate` on a float32 model, XLA; KerasHub: `compile()`'s default `jit_compile`, float32).
The CPU's model and its bf16-related flags, and the matmul peak in both precisions with and
without XLA, are printed first.

    python benchmarks/generate_throughput.py [--family gpt llama] [--rounds 5]
        [--batch-sizes 1 8] [--precisions float32 mixed_bfloat16] [--floor] [--profile]

`--floor` also times a bare loop of the GPT model's matmuls alone (same weights, same shapes,
no attention, norms or sampling): a lower bound of one decoding step. `--profile` traces one
of our float32 XLA generate calls per family and batch size with XLA's kernel-level profiler
and prints where a decoding step spends its time (top kernels).

The last line printed is one JSON object: {family: {"batch_1": {variant: tokens/s, ...,
"identical": {precision: share}, "best": ..., "default": ...}, ...}, "cpu": ...}.
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

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasllm import hardware  # noqa: E402
from kerasllm.generation import GreedySampler, decode_causal  # noqa: E402
from kerasllm.layers.attention import core_tf_cache_writes  # noqa: E402
from kerasllm.models import CausalLM, Decoder  # noqa: E402

PROMPT_LENGTH = 16
NEW_TOKENS = 112
TOTAL = PROMPT_LENGTH + NEW_TOKENS
VOCABULARY = 8000
GPT = dict(
    vocabulary_size=VOCABULARY,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=1024,
)
LLAMA = dict(vocabulary_size=VOCABULARY, num_layers=4, hidden_dim=256, intermediate_dim=688)
LLAMA_HEADS, LLAMA_KV_HEADS, THETA, EPSILON = 8, 4, 10000.0, 1e-5
BF16_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx2", "fma")


def copy_weights(source, target):
    """Assigns `source`'s backbone weights to `target`'s (same order and sizes; KerasHub
    splits heads, so each is reshaped)."""
    for mine, theirs in zip(source.backbone.weights, target.backbone.weights, strict=True):
        theirs.assign(np.reshape(mine.numpy(), theirs.shape))


def build_gpt():
    ours = CausalLM(
        Decoder(
            **GPT,
            norm_first=True,
            activation="gelu_approximate",
            layer_norm_epsilon=1e-5,
            dropout=0.0,
        )
    )
    backbone = keras_hub.models.GPT2Backbone(**GPT, dropout=0.0)
    return ours, backbone, keras_hub.models.GPT2CausalLM, "ours_to_theirs"


def build_llama():
    backbone = keras_hub.models.LlamaBackbone(
        **LLAMA,
        num_query_heads=LLAMA_HEADS,
        num_key_value_heads=LLAMA_KV_HEADS,
        rope_max_wavelength=THETA,
        layer_norm_epsilon=EPSILON,
        dropout=0.0,
        tie_word_embeddings=False,
    )
    ours = CausalLM(
        Decoder(
            **LLAMA,
            num_heads=LLAMA_HEADS,
            num_key_value_heads=LLAMA_KV_HEADS,
            max_sequence_length=TOTAL,
            position_embedding="rotary",
            rotary_max_wavelength=THETA,
            activation="swiglu",
            norm_first=True,
            norm_type="rms",
            layer_norm_epsilon=EPSILON,
            use_bias=False,
            embedding_norm=False,
            tie_embeddings=False,
            scale_tied_logits=False,
            dropout=0.0,
        )
    )
    return ours, backbone, keras_hub.models.LlamaCausalLM, "theirs_to_ours"


def build_models(family, precision, reference=None):
    """(ours, KerasHub default-compiled, KerasHub XLA-compiled) built under `precision`'s
    dtype policy. `reference` (the float32 pair) gives them its weights, so every precision
    runs the same function."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        ours, backbone, task_class, direction = {"gpt": build_gpt, "llama": build_llama}[family]()
        theirs = task_class(backbone=backbone, preprocessor=None)
        theirs_xla = task_class(backbone=backbone, preprocessor=None)
    finally:
        keras.config.set_dtype_policy(previous)
    if reference is not None:
        copy_weights(reference[0], ours)
        copy_weights(reference[0], theirs)
    elif direction == "ours_to_theirs":
        copy_weights(ours, theirs)
    else:
        copy_weights(theirs, ours)
    theirs.compile(sampler="greedy")  # out of the box: jit_compile="auto"
    theirs_xla.compile(sampler="greedy", jit_compile=True)
    return ours, theirs, theirs_xla


def graph_runner(ours, prompts):
    """Our decoding loop as a plain (not XLA-compiled) TensorFlow graph."""
    sampler = GreedySampler()
    lengths = tf.fill([prompts.shape[0]], PROMPT_LENGTH)

    @tf.function(jit_compile=False)
    def loop(ids, lengths):
        with core_tf_cache_writes():
            return decode_causal(
                ours,
                ids,
                lengths,
                cache_length=TOTAL,
                max_new_tokens=NEW_TOKENS,
                sampler=sampler,
                stop_token_ids=None,
            )["token_ids"]

    ids = tf.constant(prompts, tf.int32)
    return lambda: loop(ids, lengths).numpy()


def runners(models, batch_size):
    """{(side, precision, "xla" | "graph"): callable returning (B, TOTAL) ids}."""
    prompts = (
        np.random.default_rng(batch_size)
        .integers(1, VOCABULARY, size=(batch_size, PROMPT_LENGTH))
        .astype("int32")
    )
    padded = np.zeros((batch_size, TOTAL), "int32")
    padded[:, :PROMPT_LENGTH] = prompts
    mask = np.repeat(np.arange(TOTAL)[None, :] < PROMPT_LENGTH, batch_size, 0)
    keras_hub_inputs = {"token_ids": padded, "padding_mask": mask}

    def keras_hub_runner(model):
        return lambda: np.asarray(
            model.generate(keras_hub_inputs, stop_token_ids=None)["token_ids"]
        )

    fns = {}
    for precision, (ours, theirs, theirs_xla) in models.items():
        fns[("ours", precision, "xla")] = lambda ours=ours: ours.generate(
            prompts, max_new_tokens=NEW_TOKENS, stop_token_ids=None
        )
        fns[("ours", precision, "graph")] = graph_runner(ours, prompts)
        fns[("keras_hub", precision, "xla")] = keras_hub_runner(theirs_xla)
        fns[("keras_hub", precision, "graph")] = keras_hub_runner(theirs)
    return fns


def matmul_floor(ours, batch_size, steps=NEW_TOKENS):
    """Seconds per step of a loop doing only the GPT model's matmuls on its own weights."""
    hidden, width = GPT["hidden_dim"], GPT["intermediate_dim"]
    embeddings = ours.backbone.token_embedding.embeddings
    kernels = [w for w in ours.backbone.weights if len(w.shape) == 2 and "embedding" not in w.path]

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

    x = tf.ones((batch_size, hidden))
    loop(x).numpy()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        loop(x).numpy()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def profile(ours, label, batch_size, top=15):
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
    totals.pop("ThunkExecutor::Execute", None)
    totals = {k: v for k, v in totals.items() if not k.startswith("while")}
    kernels_ms = sum(totals.values()) / 1e9 / NEW_TOKENS
    print(f"{label}: XLA kernels {kernels_ms:.2f} ms/step; largest:")
    for name, ps in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {name:40s} {ps / 1e6 / NEW_TOKENS:8.1f} us/step")


def name(key):
    side, precision, mode = key
    return f"{side}/{precision}/{'xla' if mode == 'xla' else 'no-xla'}"


def print_machine():
    model = hardware.cpu_model() or "unknown"
    flags = hardware.cpu_flags()
    present = [f for f in BF16_FLAGS if f in flags]
    print(f"cpu: {model}; {os.cpu_count()} cores; flags: {' '.join(present) or 'none of'} ")
    print(
        f"     (of {' '.join(BF16_FLAGS)}); oneDNN {'on' if hardware.onednn_enabled() else 'off'}"
    )
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, keras-hub {keras_hub.__version__}"
    )
    for dtype in ("float32", "bfloat16"):
        for jit in (True, False):
            flops = hardware.matmul_flops(dtype, jit_compile=jit, size=1024, repeats=3)
            print(
                f"matmul peak {dtype:8s} {'xla' if jit else 'no-xla':6s}: "
                f"{flops / 1e9:7.1f} GFLOP/s"
            )
    return {"model": model, "flags": present}


def run_family(family, args):
    reference = build_models(family, "float32")
    models = {"float32": reference}
    for precision in args.precisions:
        if precision != "float32":
            models[precision] = build_models(family, precision, reference)
    models = {p: models[p] for p in args.precisions}
    ours = reference[0]
    print(
        f"\n== {family}: parameters ours {ours.count_params():,}, keras_hub "
        f"{reference[1].count_params():,}; prompt {PROMPT_LENGTH}, new tokens {NEW_TOKENS}, greedy"
    )
    results = {}
    for batch_size in args.batch_sizes:
        fns = runners(models, batch_size)
        outputs = {}
        for key, fn in fns.items():
            start = time.perf_counter()
            outputs[key] = np.asarray(fn())
            print(
                f"{family} b{batch_size}: {name(key)} first call {time.perf_counter() - start:.1f}s"
            )
        identical = {}
        for precision in models:
            mine = outputs[("ours", precision, "xla")][:, PROMPT_LENGTH:]
            shares = [
                (mine == outputs[(side, precision, mode)][:, PROMPT_LENGTH:]).mean()
                for side, mode in (("keras_hub", "xla"), ("keras_hub", "graph"), ("ours", "graph"))
            ]
            identical[precision] = round(float(min(shares)), 4)
            print(
                f"{family} b{batch_size} {precision}: tokens identical to ours/xla: keras_hub/xla "
                f"{shares[0]:.1%}, keras_hub/no-xla {shares[1]:.1%}, ours/no-xla {shares[2]:.1%}"
            )
        times = {key: [] for key in fns}
        for _ in range(args.rounds):
            for key, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        tokens = batch_size * NEW_TOKENS
        speed = {key: tokens / min(t) for key, t in times.items()}
        print(
            f"{family} b{batch_size}: tokens/s of the fastest round (ms/step; median; rounds in s)"
        )
        for key, t in times.items():
            print(
                f"    {name(key):32s} {speed[key]:8.1f}  ({min(t) / NEW_TOKENS * 1e3:6.2f}"
                f" ms/step; median {tokens / statistics.median(t):8.1f}; "
                f"{' '.join(f'{x:.3f}' for x in t)})"
            )
        row = {name(key): round(value, 1) for key, value in speed.items()}
        print(f"{family} b{batch_size}: (a) ours / KerasHub at identical settings:")
        for precision in models:
            for mode in ("xla", "graph"):
                ratio = speed[("ours", precision, mode)] / speed[("keras_hub", precision, mode)]
                label = f"{precision}/{'xla' if mode == 'xla' else 'no-xla'}"
                row[f"ratio {label}"] = round(ratio, 2)
                print(f"    {label:28s} {ratio:5.2f}")
        best = {
            side: max((k for k in speed if k[0] == side), key=speed.__getitem__)
            for side in ("ours", "keras_hub")
        }
        ratio = speed[best["ours"]] / speed[best["keras_hub"]]
        row["best"] = {"ours": name(best["ours"]), "keras_hub": name(best["keras_hub"])}
        row["ratio best"] = round(ratio, 2)
        print(
            f"{family} b{batch_size}: (b) best vs best: ours {name(best['ours'])} "
            f"{speed[best['ours']]:.1f} / keras_hub {name(best['keras_hub'])} "
            f"{speed[best['keras_hub']]:.1f} = {ratio:.2f}"
        )
        if "float32" in models:
            default = speed[("ours", "float32", "xla")] / speed[("keras_hub", "float32", "graph")]
            row["ratio default"] = round(default, 2)
            print(
                f"{family} b{batch_size}: (c) out of the box (ours float32/xla, KerasHub "
                f"float32/compile() default): {default:.2f}"
            )
        row["identical"] = identical
        results[f"batch_{batch_size}"] = row
        if args.floor and family == "gpt":
            floor = matmul_floor(ours, batch_size)
            print(f"{family} b{batch_size}: bare matmul loop {floor * 1e3:.2f} ms/step")
        if args.profile:
            profile(ours, f"{family} b{batch_size}", batch_size)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", nargs="+", choices=["gpt", "llama"], default=["gpt", "llama"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["float32", "mixed_bfloat16"],
        default=["float32", "mixed_bfloat16"],
    )
    parser.add_argument("--floor", action="store_true", help="also time a bare matmul loop")
    parser.add_argument("--profile", action="store_true", help="print per-kernel step times")
    args = parser.parse_args()
    results = {"cpu": print_machine()}
    for family in args.family:
        results[family] = run_family(family, args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
