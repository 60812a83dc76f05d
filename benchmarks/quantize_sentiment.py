"""Post-training quantization of the fine-tuned MiniLM-L6 sentiment classifier: test accuracy,
weights file size and CPU latency per batch of 32, float32 against int8 (and int4).

Every variant is the same bundle (`--model`, e.g. the teacher saved by
`benchmarks/distill_sentiment.py --save-teacher DIR`; without it, MiniLM-L6 is fine-tuned
here as that script does: `fit` for one epoch on the first `--train-size` training snippets)
loaded again and quantized with `kerasllm.compression.quantize` (what `kerasllm compress
quantize` runs): "int8" is Keras' W8A8 dynamic quantization of every projection and of the
token embedding, "int8-keep-embeddings" leaves the embedding float, "int4" is weight-only
(block 128). Each is saved as a bundle to measure its weights file: the model's weights alone,
and (for a model fine-tuned with `fit`, saved compiled) with the AdamW state that a bundle
then carries, float slots included after quantization.

Accuracy: `predict` on the 1,281 test snippets (text in, through the bundle's preprocessor).
Latency: the model's forward pass on token ids (tokenization is the same for every variant and
left out), on the same `--batches` batches of `--batch-size` test snippets (each padded to its
longest snippet, as the preprocessor pads), in this one process: one warm-up pass over every
batch (tracing and compilation), then `--repeats` passes in which each batch is run by every
variant in turn, so all share the machine's noise; the median (and min, mean) over the timed
calls. Two paths: `graph` (a `tf.function` without XLA: what an exported SavedModel runs) and
`xla` (`jit_compile=True`). The CPU's model and flags are printed first; the report is printed
as JSON and written to `--output`.

    .venv/bin/python benchmarks/quantize_sentiment.py --model /tmp/rt_teacher \\
        --modes int8 int4 --output /tmp/quantize_sentiment.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

#: CPU flags that decide which matmul kernels can run (printed with the report).
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
VARIANTS = ("int8", "int8-keep-embeddings", "int4")


def build_parser() -> argparse.ArgumentParser:
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="The float sentiment bundle (else MiniLM is fine-tuned)."
    )
    parser.add_argument(
        "--train-size", type=int, default=2000, help="Without --model: snippets to fine-tune on."
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=VARIANTS,
        default=["int8", "int4"],
        help="Quantized variants measured against float32.",
    )
    parser.add_argument(
        "--test-size", type=int, default=None, help="Test snippets (the first N); default all."
    )
    parser.add_argument("--batch-size", type=int, default=32, help="Snippets per timed batch.")
    parser.add_argument("--batches", type=int, default=20, help="Timed batches (distinct).")
    parser.add_argument("--repeats", type=int, default=2, help="Timed passes over them.")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=("graph", "xla"),
        default=["graph", "xla"],
        help="Compiled forms timed.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the fine-tuning.")
    parser.add_argument("--output", default=None, help="Also write the report (JSON) here.")
    return parser


def cpu_report() -> dict:
    """The CPU's model, its matmul-relevant flags and the thread settings."""
    import tensorflow as tf

    from kerasllm import hardware

    model = hardware.cpu_model()
    flags = hardware.cpu_flags()
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": [flag for flag in RELEVANT_FLAGS if flag in flags],
        "missing_flags": [flag for flag in RELEVANT_FLAGS if flag not in flags],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "tensorflow": tf.__version__,
    }


def predict_logits(model, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 2), "float32")
    return np.asarray(model.predict(texts, batch_size=128, verbose=0), "float32")


def time_variants(models: dict, batches: list, repeats: int, jit_compile: bool) -> dict:
    """Per variant: median/min/mean milliseconds of one forward pass over each batch, the
    variants taking turns on every batch (after a warm-up pass that traces every shape)."""
    import tensorflow as tf

    functions = {
        name: tf.function(
            lambda x, model=model: model(x, training=False),
            jit_compile=jit_compile,
            reduce_retracing=not jit_compile,
        )
        for name, model in models.items()
    }
    warmup = {}
    for name, function in functions.items():
        began = time.perf_counter()
        for batch in batches:
            function(batch).numpy()
        warmup[name] = round(time.perf_counter() - began, 2)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for batch in batches:
            for name, function in functions.items():
                began = time.perf_counter()
                function(batch).numpy()  # .numpy() waits for the result
                times[name].append(time.perf_counter() - began)
    return {
        name: {
            "median_ms": round(1000 * statistics.median(values), 2),
            "min_ms": round(1000 * min(values), 2),
            "mean_ms": round(1000 * statistics.fmean(values), 2),
            "calls": len(values),
            "warmup_seconds": warmup[name],
        }
        for name, values in times.items()
    }


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.batches < 1 or args.repeats < 1:
        raise ValueError("--batch-size, --batches and --repeats must be >= 1.")
    import keras

    from kerasllm import bundle, compression
    from kerasllm.datasets import rotten_tomatoes
    from kerasllm.utils.files import write_json

    report: dict = {"cpu": cpu_report()}
    print(json.dumps(report), flush=True)
    test_texts, test_labels = rotten_tomatoes("test")
    if args.test_size is not None:
        test_texts, test_labels = test_texts[: args.test_size], test_labels[: args.test_size]
    workdir = tempfile.mkdtemp(prefix="quantize-sentiment-")
    source = args.model
    if source is None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from distill_sentiment import train_teacher

        train_texts, train_labels = rotten_tomatoes("train")
        n = args.train_size
        teacher, tokenizer = train_teacher(train_texts[:n], train_labels[:n], 1, 1e-4, args.seed)
        source = os.path.join(workdir, "float32")
        bundle.Bundle(teacher, {"text": tokenizer}).save(source)
        report["fine_tuned"] = {"train_examples": n, "epochs": 1, "learning_rate": 1e-4}
    report["model"] = source

    models = {}
    for variant in ["float32", *args.modes]:
        keras.utils.set_random_seed(args.seed)
        item = bundle.load(source)
        began = time.perf_counter()
        folder = source
        if variant != "float32":
            mode = variant.split("-")[0]
            compression.quantize(item, mode, keep_embeddings=variant.endswith("embeddings"))
            folder = os.path.join(workdir, variant)
            item.save(folder)
        seconds = time.perf_counter() - began
        saved = compression.weights_file_size(folder)
        # A model fine-tuned with `fit` is saved compiled: its weights file also holds AdamW's
        # two slots per float weight, and `bundle.load` compiles it again (building them
        # afresh), so a quantized copy still saves float slots. The model's own weights are
        # measured without them.
        item.model.optimizer = None
        item.save(os.path.join(workdir, variant + "-weights-only"))
        models[variant] = item.model
        report[variant] = {
            "quantize_and_save_seconds": round(seconds, 1),
            "weights_file_bytes": compression.weights_file_size(
                os.path.join(workdir, variant + "-weights-only")
            ),
            "weights_file_bytes_with_optimizer_state": saved,
            "quantized_layers": len(compression.quantized_layers(item.model)),
        }
    reference = None
    for variant, model in models.items():
        began = time.perf_counter()
        logits = predict_logits(model, test_texts)
        predicted = np.argmax(logits, -1)
        entry = report[variant]
        entry["test_accuracy"] = round(float(np.mean(predicted == np.asarray(test_labels))), 4)
        entry["evaluate_seconds"] = round(time.perf_counter() - began, 1)
        if reference is None:
            reference = (logits, predicted)
        else:
            entry["accuracy_points_vs_float"] = round(
                100 * (entry["test_accuracy"] - report["float32"]["test_accuracy"]), 2
            )
            entry["same_prediction_as_float"] = round(float(np.mean(predicted == reference[1])), 4)
            entry["max_abs_logit_difference"] = round(
                float(np.max(np.abs(logits - reference[0]))) if len(logits) else 0.0, 4
            )
            entry["weights_file_ratio"] = round(
                entry["weights_file_bytes"] / report["float32"]["weights_file_bytes"], 4
            )
        print(json.dumps({variant: entry}), flush=True)

    # The same token-id batches for every variant: the float model's preprocessor output.
    preprocessor = models["float32"].preprocessor
    batches = []
    for i in range(args.batches):
        texts = test_texts[i * args.batch_size : (i + 1) * args.batch_size]
        if len(texts) < args.batch_size:
            break
        batches.append(preprocessor(texts))
    if not batches:
        raise ValueError("Not enough test snippets for one timed batch; raise --test-size.")
    report["latency"] = {
        "batch_size": args.batch_size,
        "batches": len(batches),
        "repeats": args.repeats,
        "mean_padded_length": round(
            statistics.fmean(int(b["token_ids"].shape[1]) for b in batches), 1
        ),
    }
    for path in args.paths:
        timed = time_variants(models, batches, args.repeats, jit_compile=path == "xla")
        for variant in args.modes:
            timed[variant]["speedup_vs_float"] = round(
                timed["float32"]["median_ms"] / timed[variant]["median_ms"], 3
            )
        report["latency"][path] = timed
        print(json.dumps({path: timed}), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)  # the saved variants (hundreds of MB)
    if args.output:
        write_json(args.output, report)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
