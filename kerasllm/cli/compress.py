"""`kerasllm compress`: a smaller or faster copy of a model bundle, with a report of what it cost.

`kerasllm compress quantize` writes the quantized bundle and, beside its weights,
`compression_report.json` and `compression_report.md`: weights file size and parameter count
before and after, CPU latency and throughput of both models timed in the same process
(alternating, the best of `--repeats` passes after a warm-up pass that compiles), and, with
`--data`, quality before and after through `kerasllm evaluate`'s path (BLEU/chrF for a seq2seq
LM, accuracy for a classifier).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kerasllm.cli import _inference

DESCRIPTION = """\
Compress a model bundle (or a preset that is a bundle, e.g. translate_en_fr) and write the
result as a new bundle with a report (compression_report.json / .md inside it): weights file
size, parameters, CPU latency and throughput against the original (same process), and quality
before and after when --data is given (as `kerasllm evaluate` measures it).

  quantize   post-training quantization (Keras): int8 (weights and per-token activations,
             W8A8 dynamic) or int4 (weights only); the token embedding and tied output
             projection too unless --keep-embeddings.
"""

EPILOG = """\
examples:
  kerasllm compress quantize --model translate_en_fr --mode int8 --output runs/fr_int8 \\
      --data bible --split test
  kerasllm compress quantize --model runs/sentiment/bundle --mode int4 --output runs/s_int4
"""

#: Sentences timed when no --data is given (a mix of lengths; repeated to --benchmark-size).
BENCHMARK_TEXTS = (
    "In the beginning God created the heavens and the earth.",
    "The king said to the people, go home.",
    "And he answered and said unto them, Who is my mother, or my brethren?",
    "Blessed are the meek.",
    "Now the serpent was more subtle than any beast of the field which the Lord God had made, "
    "and he said unto the woman, Yea, hath God said, Ye shall not eat of every tree?",
    "It was a good film, though a little too long.",
    "Peace be with you.",
    "They went out of the city and came to the river at evening.",
)

REPORT_JSON = "compression_report.json"
REPORT_MARKDOWN = "compression_report.md"
MODEL_CARD = "MODEL_CARD.md"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="Quantize a model bundle; writes the new bundle and a size/speed/quality report.",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    methods = parser.add_subparsers(dest="method", metavar="METHOD")
    methods.required = True
    quantize = methods.add_parser(
        "quantize",
        help="Post-training int8 / int4 quantization.",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _inference.add_model_argument(quantize)
    quantize.add_argument(
        "--mode",
        choices=("int8", "int4"),
        default="int8",
        help="int8: weights and dynamic per-token activations; int4: weights only.",
    )
    quantize.add_argument(
        "--output", required=True, metavar="DIR", help="Where the quantized bundle goes."
    )
    quantize.add_argument(
        "--keep-embeddings",
        action="store_true",
        help="Leave the token embedding and the output projection it ties in float.",
    )
    quantize.add_argument(
        "--block-size",
        type=int,
        default=128,
        metavar="N",
        help="int4: inputs per scale (0: one scale per output unit).",
    )
    quantize.add_argument(
        "--data",
        default=None,
        metavar="CORPUS_OR_FILE",
        help="Evaluate before and after on this corpus or file (as `kerasllm evaluate`); "
        "also the texts timed. Default: no quality figures, a few built-in sentences timed.",
    )
    quantize.add_argument(
        "--split", choices=("validation", "test"), default="test", help="Split of --data."
    )
    quantize.add_argument(
        "--max-examples",
        type=int,
        default=None,
        metavar="N",
        help="Evaluate only the first N examples (default: all of the split).",
    )
    quantize.add_argument(
        "--batch-size",
        type=int,
        default=_inference.DEFAULT_BATCH_SIZE,
        metavar="N",
        help="Texts run through the model at once (evaluation and timing).",
    )
    quantize.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help=(
            "Seq2seq LM: most tokens generated per source (default: as `kerasllm evaluate`, "
            "the bundle's target length)."
        ),
    )
    quantize.add_argument(
        "--benchmark-size",
        type=int,
        default=64,
        metavar="N",
        help="Texts per timed pass (0: no timing).",
    )
    quantize.add_argument(
        "--repeats", type=int, default=3, metavar="N", help="Timed passes per model."
    )
    quantize.set_defaults(func=_quantize)


def _load_bundle(name: str):
    """The bundle of a bundle folder, or of a preset that is a saved bundle (translate_en_fr)."""
    from kerasllm import bundle as bundle_lib
    from kerasllm import zoo

    folder = name
    if not bundle_lib.is_bundle(name):
        try:
            preset = zoo.get_preset(name)
        except (ValueError, FileNotFoundError) as error:
            raise type(error)(f"--model: {error}") from None
        # A preset that is a bundle: a bundle folder read as a preset, or one shipped in the
        # package (translate_en_fr), whose weights file lies in the bundle's folder.
        folder = preset.source
        if folder is None and preset.task is not None and preset.weights:
            folder = preset.resolve(preset.weights, "weights file").parent
        if preset.task is None or folder is None or not bundle_lib.is_bundle(folder):
            raise ValueError(
                f"--model {name!r} is not a saved task-model bundle; `kerasllm compress` "
                "needs a bundle folder or a preset that is one (e.g. translate_en_fr)."
            )
    return Path(folder), bundle_lib.load(folder)


def _check(args) -> None:
    _inference.check_batch_size(args)
    for flag, value, low in (
        ("--max-examples", args.max_examples, 1),
        ("--max-new-tokens", args.max_new_tokens, 1),
        ("--benchmark-size", args.benchmark_size, 0),
        ("--repeats", args.repeats, 1),
        ("--block-size", args.block_size, 0),
    ):
        if value is not None and value < low:
            raise ValueError(f"{flag} must be an integer >= {low}; got {value}.")


def _timed_pass(model, texts: list[str], batch_size: int, max_new_tokens: int | None) -> float:
    """Seconds to run `model` over `texts` once (generation for LMs, `predict` otherwise)."""
    from kerasllm import models

    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        batch = texts[i : i + batch_size]
        if isinstance(model, (models.Seq2SeqLM, models.CausalLM)):
            model.generate(batch, max_new_tokens=max_new_tokens)
        else:
            model.predict(batch, batch_size=batch_size, verbose=0)
    return time.perf_counter() - start


def benchmark(pair: dict, texts: list[str], batch_size: int, max_new_tokens, repeats: int):
    """`{name: {"seconds", "examples_per_second", "warmup_seconds"}}` for each model of `pair`,
    timed alternately in this process (the best of `repeats` passes after a warm-up pass)."""
    results = {name: {"passes": []} for name in pair}
    for name, model in pair.items():  # compiles every shape bucket the texts fall in
        results[name]["warmup_seconds"] = round(
            _timed_pass(model, texts, batch_size, max_new_tokens), 3
        )
    for _ in range(repeats):
        for name, model in pair.items():
            results[name]["passes"].append(_timed_pass(model, texts, batch_size, max_new_tokens))
    for result in results.values():
        best = min(result.pop("passes"))
        result["seconds"] = round(best, 3)
        result["examples_per_second"] = round(len(texts) / best, 2)
        result["ms_per_batch"] = round(1000 * best / -(-len(texts) // batch_size), 1)
    return results


def _stored_parameters(model) -> dict:
    """Parameter count (values held, whatever their type) and the bytes they take."""
    import numpy as np

    count = sum(int(np.prod(v.shape)) for v in model.weights)
    size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    return {"values": count, "bytes": size}


def _quantize(args) -> int:
    from kerasllm import compression
    from kerasllm.cli import evaluate as evaluate_cli

    _check(args)
    output = Path(args.output)
    source_folder, original = _load_bundle(args.model)
    if output.resolve() == source_folder.resolve():
        raise ValueError("--output must differ from --model's folder (it would be replaced).")
    float_model = original.model
    _, quantized = _load_bundle(args.model)
    compression.quantize(
        quantized,
        args.mode,
        keep_embeddings=args.keep_embeddings,
        block_size=args.block_size or None,
    )
    quantized.save(output)
    report: dict = {
        "model": args.model,
        "output": os.fspath(output),
        "compression": quantized.metadata["compression"][-1],
        "weights_file_bytes": {
            "original": compression.weights_file_size(source_folder),
            "compressed": compression.weights_file_size(output),
        },
        "parameters": {
            "original": _stored_parameters(float_model),
            "compressed": _stored_parameters(quantized.model),
        },
    }
    sizes = report["weights_file_bytes"]
    sizes["ratio"] = round(sizes["compressed"] / sizes["original"], 4)
    pair = {"original": float_model, "compressed": quantized.model}
    texts = list(BENCHMARK_TEXTS)
    if args.data is not None:
        objective = evaluate_cli.objective_of(float_model, args.model)
        examples, _ = evaluate_cli.load_examples(objective, args.data, args.split, None)
        if objective == "seq2seq":
            sources = [source for source, _ in examples]
        elif isinstance(examples, tuple):  # (texts or word lists, labels)
            sources = list(examples[0])
        else:  # a causal LM's texts
            sources = list(examples)
        texts = sources or texts
        namespace = argparse.Namespace(
            model=args.model,
            data=args.data,
            split=args.split,
            max_examples=args.max_examples,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
        report["quality"] = {}
        for name, bundle in (("original", original), ("compressed", quantized)):
            loaded = _inference.Loaded(bundle.model, dict(bundle.metadata))
            start = time.perf_counter()
            scores = evaluate_cli.evaluate(loaded, namespace)
            scores["seconds"] = round(time.perf_counter() - start, 1)
            report["quality"][name] = scores
            print(f"{name}: {json.dumps(scores)}", file=sys.stderr)
    if args.benchmark_size:
        timed = (texts * (1 + args.benchmark_size // len(texts)))[: args.benchmark_size]
        max_new_tokens = args.max_new_tokens
        if max_new_tokens is None and hasattr(float_model, "generate"):
            max_new_tokens = evaluate_cli.default_max_new_tokens(
                _inference.Loaded(float_model, dict(original.metadata))
            )
        speed = benchmark(pair, timed, args.batch_size, max_new_tokens, args.repeats)
        speed["speedup"] = round(speed["original"]["seconds"] / speed["compressed"]["seconds"], 3)
        speed["examples"] = len(timed)
        speed["batch_size"] = args.batch_size
        report["cpu"] = speed
    report["cpu_model"] = _cpu_model()
    from kerasllm.utils.files import atomic_write_text, write_json

    write_json(output / REPORT_JSON, report, indent=2)
    markdown = render_markdown(report)
    atomic_write_text(output / REPORT_MARKDOWN, markdown)
    _write_model_card(source_folder, output, markdown)
    print(json.dumps(report, indent=2))
    return 0


def _cpu_model() -> str | None:
    """The model name of this machine's CPU (Linux), for the report."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _write_model_card(source: Path, output: Path, report: str) -> None:
    """`MODEL_CARD.md` of the new bundle: how it was compressed, then the original's card."""
    from kerasllm.utils.files import atomic_write_text

    original = source / MODEL_CARD
    text = report
    if original.is_file() and not original.is_symlink():
        text += "\n\n# Original model card (the float model)\n\n" + original.read_text("utf-8")
    atomic_write_text(output / MODEL_CARD, text)


def render_markdown(report: dict) -> str:
    """The report as a short markdown page (what `compression_report.md` holds)."""
    step = report["compression"]
    sizes = report["weights_file_bytes"]
    params = report["parameters"]
    lines = [
        "# Compression report",
        "",
        f"`{report['model']}` → `{report['output']}`: {step['scheme']}; "
        f"{step['quantized_layers']} layers quantized; token embedding and output "
        f"projection: {step['embeddings']} (Keras {step['keras_version']}).",
        "",
        "| | original | compressed | ratio |",
        "|---|---|---|---|",
        f"| weights file (bytes) | {sizes['original']:,} | {sizes['compressed']:,} | "
        f"{sizes['ratio']:.3f} |",
        f"| stored values | {params['original']['values']:,} | "
        f"{params['compressed']['values']:,} | |",
        f"| stored bytes | {params['original']['bytes']:,} | {params['compressed']['bytes']:,} "
        f"| {params['compressed']['bytes'] / params['original']['bytes']:.3f} |",
    ]
    cpu = report.get("cpu")
    if cpu:
        lines.append(
            f"| CPU seconds per pass ({cpu['examples']} texts, batch {cpu['batch_size']}) | "
            f"{cpu['original']['seconds']} | {cpu['compressed']['seconds']} | "
            f"speed-up {cpu['speedup']:.2f}x |"
        )
        lines.append(
            f"| examples per second | {cpu['original']['examples_per_second']} | "
            f"{cpu['compressed']['examples_per_second']} | |"
        )
    quality = report.get("quality") or {}
    if quality:
        metric_names = [
            k
            for k, v in quality["original"].items()
            if isinstance(v, (int, float)) and k not in ("examples", "seconds")
        ]
        for name in metric_names:
            before, after = quality["original"][name], quality["compressed"].get(name)
            lines.append(f"| {name} | {before:.4g} | {after:.4g} | Δ {after - before:+.3g} |")
        lines.append(f"| evaluated examples | {quality['original'].get('examples')} | | |")
    if report.get("cpu_model"):
        lines += ["", f"CPU: {report['cpu_model']}."]
    return "\n".join(lines) + "\n"
