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
  distill    knowledge distillation: a smaller student (any preset, --override) trained on
             a teacher bundle's soft targets (--kind word), its beam-search outputs
             (--kind sequence), or the labels alone (--kind none, the baseline).
  prune      magnitude pruning during fine-tuning (a polynomial sparsity schedule, stripped
             to plain weights), or structured pruning of attention heads and feed-forward
             units into a smaller dense model, then recovery fine-tuning.
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


def _add_training_flags(
    parser, steps: int, steps_help: str, learning_rate: float, seconds_help: str
) -> None:
    """The training flags `prune` and `distill` share (their runs go through `_train`)."""
    parser.add_argument("--steps", type=int, default=steps, metavar="N", help=steps_help)
    parser.add_argument(
        "--learning-rate", type=float, default=learning_rate, help="Peak learning rate."
    )
    parser.add_argument(
        "--train-batch-size", type=int, default=32, metavar="N", help="Examples per update."
    )
    parser.add_argument(
        "--max-train-seconds", type=float, default=None, metavar="S", help=seconds_help
    )


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="Quantize, distill or prune a model bundle; writes the new bundle and a "
        "size/speed/quality report.",
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
    _inference.add_evaluation_flags(
        quantize,
        data_required=False,
        data_help="Evaluate before and after on this corpus or file (as `kerasllm evaluate`); "
        "also the texts timed. Default: no quality figures, a few built-in sentences timed.",
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
    _add_prune_parser(methods)
    _add_distill_parser(methods)


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
        ("--block-size", getattr(args, "block_size", None), 0),
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

    _check(args)
    output = Path(args.output)
    source_folder, original = _load_bundle(args.model)
    if output.resolve() == source_folder.resolve():
        raise ValueError("--output must differ from --model's folder (it would be replaced).")
    _, quantized = _load_bundle(args.model)
    compression.quantize(
        quantized,
        args.mode,
        keep_embeddings=args.keep_embeddings,
        block_size=args.block_size or None,
    )
    quantized.save(output)
    return write_report(args, source_folder, original, quantized, output)


def write_report(args, source_folder: Path, original, compressed, output: Path) -> int:
    """Measures `original` against `compressed` (saved in `output`) and writes the report, its
    markdown and the model card into `output`; prints the report. `args` holds the evaluation
    flags (`_inference.add_evaluation_flags`), `--benchmark-size` and `--repeats`."""
    from kerasllm import compression
    from kerasllm.cli import evaluate as evaluate_cli

    float_model = original.model
    quantized = compressed
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
        # The whole evaluation (greedy decoding of every example for an LM, compilation
        # included), timed for both models in this process.
        seconds = [report["quality"][n]["seconds"] for n in ("original", "compressed")]
        report["evaluation_seconds"] = {
            "original": seconds[0],
            "compressed": seconds[1],
            "speedup": round(seconds[0] / seconds[1], 3) if seconds[1] else None,
        }
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
    from kerasllm import hardware
    from kerasllm.utils.files import atomic_write_text, write_json

    report["cpu_model"] = hardware.cpu_model()

    write_json(output / REPORT_JSON, report, indent=2)
    markdown = render_markdown(report)
    atomic_write_text(output / REPORT_MARKDOWN, markdown)
    _write_model_card(source_folder, output, markdown)
    print(json.dumps(report, indent=2))
    return 0


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
    if step.get("method") in ("pruning", "distillation"):
        summary = f"{step['scheme']} (Keras {step['keras_version']})."
    else:
        summary = (
            f"{step['scheme']}; {step['quantized_layers']} layers quantized; token embedding "
            f"and output projection: {step['embeddings']} (Keras {step['keras_version']})."
        )
    lines = [
        "# Compression report",
        "",
        f"`{report['model']}` → `{report['output']}`: {summary}",
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
        timing = report.get("evaluation_seconds")
        if timing and timing.get("speedup"):
            lines.append(
                f"| evaluation seconds (whole split) | {timing['original']} | "
                f"{timing['compressed']} | speed-up {timing['speedup']:.2f}x |"
            )
    if report.get("cpu_model"):
        lines += ["", f"CPU: {report['cpu_model']}."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ prune
PRUNE_EPILOG = """\
examples:
  kerasllm compress prune --model translate_en_fr --method magnitude --sparsity 0.5 \\
      --data bible --steps 600 --output runs/fr_sparse50
  kerasllm compress prune --model translate_en_fr --method structured --heads-fraction 0.25 \\
      --ffn-fraction 0.25 --data bible --steps 500 --output runs/fr_heads75
"""


def _add_prune_parser(methods) -> None:
    prune = methods.add_parser(
        "prune",
        help="Magnitude (unstructured) or structured (heads, feed-forward units) pruning, "
        "with recovery fine-tuning.",
        description=DESCRIPTION,
        epilog=PRUNE_EPILOG,
    )
    _inference.add_model_argument(prune)
    prune.add_argument("--output", required=True, metavar="DIR", help="Where the bundle goes.")
    prune.add_argument(
        "--method",
        dest="prune_method",
        choices=("magnitude", "structured"),
        default="magnitude",
        help="magnitude: zero the smallest weights of each attention and feed-forward kernel "
        "during fine-tuning (polynomial schedule); structured: remove the least important "
        "attention heads and feed-forward units, a smaller dense model.",
    )
    prune.add_argument(
        "--sparsity", type=float, default=0.5, help="magnitude: final fraction of zeros."
    )
    prune.add_argument(
        "--initial-sparsity", type=float, default=0.0, help="magnitude: sparsity at --begin-step."
    )
    prune.add_argument(
        "--begin-step", type=int, default=0, metavar="N", help="magnitude: first mask update."
    )
    prune.add_argument(
        "--end-step",
        type=int,
        default=None,
        metavar="N",
        help="magnitude: step at which --sparsity is reached (default: half of --steps; "
        "0 prunes at once).",
    )
    prune.add_argument(
        "--frequency", type=int, default=50, metavar="N", help="magnitude: steps between updates."
    )
    prune.add_argument("--power", type=float, default=3.0, help="magnitude: schedule exponent.")
    prune.add_argument(
        "--include-embeddings",
        action="store_true",
        help="magnitude: prune the token embedding (and the output projection it ties) too.",
    )
    prune.add_argument(
        "--heads-fraction",
        type=float,
        default=0.25,
        help="structured: fraction of each attention layer's heads removed.",
    )
    prune.add_argument(
        "--ffn-fraction",
        type=float,
        default=0.25,
        help="structured: fraction of each feed-forward layer's units removed.",
    )
    prune.add_argument(
        "--importance",
        choices=("magnitude", "taylor"),
        default="taylor",
        help="structured: how heads and units are scored (taylor: first-order Taylor "
        "importance on --importance-batches training batches; magnitude: weight norms). "
        "Default taylor when --data is given, else magnitude.",
    )
    prune.add_argument(
        "--importance-batches", type=int, default=16, metavar="N", help="structured, taylor."
    )
    _add_training_flags(
        prune,
        steps=0,
        steps_help="Fine-tuning updates on --data's training split (magnitude: the schedule "
        "runs in them; structured: recovery). 0: none (magnitude then prunes at once).",
        learning_rate=3e-4,
        seconds_help="Stop fine-tuning after this many seconds (the learning rate still "
        "anneals; the sparsity schedule must reach --end-step by then). Default: no limit.",
    )
    _inference.add_evaluation_flags(
        prune,
        data_required=False,
        data_help="Fine-tune on this corpus's training split (or file) and evaluate before and "
        "after on --split (as `kerasllm evaluate`); also the texts timed. Default: no "
        "fine-tuning (magnitude prunes at once), no quality figures.",
    )
    prune.add_argument(
        "--benchmark-size", type=int, default=64, metavar="N", help="Texts per timed pass."
    )
    prune.add_argument("--repeats", type=int, default=3, metavar="N", help="Timed passes.")
    prune.set_defaults(func=_prune)


def _check_prune(args) -> None:
    _check(args)
    for flag, value in (
        ("--sparsity", args.sparsity),
        ("--initial-sparsity", args.initial_sparsity),
        ("--heads-fraction", args.heads_fraction),
        ("--ffn-fraction", args.ffn_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{flag} must be in [0, 1); got {value}.")
    for flag, value, low in (
        ("--steps", args.steps, 0),
        ("--begin-step", args.begin_step, 0),
        ("--end-step", args.end_step, 0),
        ("--frequency", args.frequency, 1),
        ("--importance-batches", args.importance_batches, 1),
        ("--train-batch-size", args.train_batch_size, 1),
    ):
        if value is not None and value < low:
            raise ValueError(f"{flag} must be an integer >= {low}; got {value}.")
    if args.steps and args.data is None:
        raise ValueError("--steps needs --data (the fine-tuning data).")
    end = args.end_step
    if (
        args.prune_method == "magnitude"
        and args.steps
        and end is not None
        and (end > args.steps or args.begin_step > end)
    ):
        raise ValueError(
            f"Need --begin-step <= --end-step <= --steps; got {args.begin_step}, "
            f"{args.end_step}, {args.steps}."
        )


def _training_data(item, objective: str, data: str, batch_size: int, seed: int = 0):
    """A `Trainer` data function over `data`'s training examples for the bundle `item`
    (its tokenizers and sequence lengths)."""
    from kerasllm import data as kd
    from kerasllm.training import inputs

    corpus = inputs.load_corpus(objective, data)
    metadata = item.metadata
    backbone_length = item.model.backbone.max_sequence_length
    if objective == "seq2seq":
        source, target = item.tokenizers["source"], item.tokenizers["target"]
        source_length = metadata.get("source_length") or backbone_length
        target_length = metadata.get("target_length") or backbone_length
        pairs = list(corpus.train)

        def build(context):
            return kd.seq2seq_dataset(
                pairs,
                source,
                target,
                source_length,
                target_length,
                context.get_per_replica_batch_size(batch_size),
                seed=seed,
                shuffle=True,
                bucketing=True,
                drop_remainder=True,
                num_shards=context.num_input_pipelines,
                shard_index=context.input_pipeline_id,
            )[0]

        return build, len(pairs)
    tokenizer = item.tokenizers.get("text") or next(iter(item.tokenizers.values()))
    length = metadata.get("sequence_length") or backbone_length
    train = corpus.train
    size = len(train[0]) if isinstance(train, tuple) else len(train)
    fn = inputs.dataset_fn(
        objective,
        train,
        tokenizer,
        batch_size,
        length,
        training=True,
        seed=seed,
        labels=metadata.get("label_names") or corpus.labels,
        bucketing=True,
    )
    return fn, size


def _train(
    item,
    model,
    objective,
    data: str,
    args,
    callbacks_fn=None,
    warmup_divisor: int = 20,
) -> dict:
    """`args.steps` updates of `model` on `data`'s training split with the project's `Trainer`
    (checkpoints in a temporary folder), the one training loop of `prune` and `distill`.

    `model` is a built model (pruning fine-tunes the loaded one: it trains on this device
    with the default strategy, since its variables exist already) or a function building it
    (distillation: the Trainer calls it in its own strategy scope and precision).
    `objective` is a name or an Objective wrapping one (`Distillation`); `callbacks_fn(trainer)`
    gives extra callbacks/actions. Returns what the run did, with the trained `model`."""
    import contextlib
    import tempfile

    from kerasllm.training import Trainer, TrainerConfig

    name = objective if isinstance(objective, str) else objective.base.name
    data_fn, size = _training_data(item, name, data, args.train_batch_size)
    with tempfile.TemporaryDirectory(prefix="kerasllm-compress-") as folder:
        config = TrainerConfig(
            model_dir=folder,
            steps=args.steps,
            global_batch_size=args.train_batch_size,
            learning_rate=args.learning_rate,
            warmup_steps=max(1, args.steps // warmup_divisor),
            checkpoint_every=10**9,
            keep_checkpoints=1,
            max_train_seconds=args.max_train_seconds,
            log_every=max(1, min(100, args.steps // 10)),
            verbose=2,
        )
        trainer = Trainer(model, objective, config)
        callbacks = callbacks_fn(trainer) if callbacks_fn is not None else []
        began = time.perf_counter()
        # The trainer's log lines go to standard error: standard output holds the report.
        with contextlib.redirect_stdout(sys.stderr):
            history = trainer.fit(data_fn, callbacks=callbacks)
        seconds = time.perf_counter() - began
        trainer.close()
    return {
        "model": trainer.model,
        "data": data,
        "training_examples": size,
        "steps": int(history["step"]),
        "batch_size": args.train_batch_size,
        "learning_rate": args.learning_rate,
        "seconds": round(seconds, 1),
        "final_loss": history.get("train", {}).get("loss"),
    }


def _fine_tune(item, objective: str, args, callbacks_fn=None) -> dict:
    """Recovery fine-tuning of the pruned `item.model` on `args.data` (see `_train`)."""
    training = _train(item, item.model, objective, args.data, args, callbacks_fn)
    del training["model"]  # trained in place
    return training


def _prune(args) -> int:
    from kerasllm.cli import evaluate as evaluate_cli
    from kerasllm.compression import pruning

    _check_prune(args)
    output = Path(args.output)
    source_folder, original = _load_bundle(args.model)
    if output.resolve() == source_folder.resolve():
        raise ValueError("--output must differ from --model's folder (it would be replaced).")
    _, item = _load_bundle(args.model)
    objective = evaluate_cli.objective_of(item.model, args.model)
    if args.prune_method == "magnitude":
        end_step = args.end_step if args.end_step is not None else args.steps // 2
        schedule = pruning.PolynomialDecay(
            args.initial_sparsity,
            args.sparsity,
            begin_step=min(args.begin_step, end_step),
            end_step=end_step,
            power=args.power,
            frequency=args.frequency,
        )
        made = {}

        def callbacks_fn(trainer):
            made["pruning"] = pruning.MagnitudePruning(
                trainer.model, schedule, args.include_embeddings, strategy=trainer.strategy
            )
            return [made["pruning"]]

        training = None
        if args.steps:
            training = _fine_tune(item, objective, args, callbacks_fn)
        else:  # one-shot: the final masks at once
            made["pruning"] = pruning.MagnitudePruning(
                item.model, schedule, args.include_embeddings
            )
            made["pruning"].update_masks(schedule.end_step)
        # --max-train-seconds can stop training before --end-step: the final masks then come
        # at once, without fine-tuning after them (the report says so).
        shortened = made["pruning"].current_sparsity < schedule.final_sparsity
        if shortened:
            made["pruning"].update_masks(schedule.end_step)
        pruning.strip(item.model)
        measured = pruning.sparsity(item.model, args.include_embeddings)
        record = pruning.describe_magnitude(schedule, measured, args.include_embeddings)
        if args.steps:
            record["final_masks_after_training"] = shortened
    else:
        scores = None
        method = args.importance if args.data is not None else "magnitude"
        if method == "taylor":
            data_fn, _ = _training_data(item, objective, args.data, args.train_batch_size, seed=1)
            import tensorflow as tf

            batches = data_fn(tf.distribute.InputContext())
            scores = pruning.importance(
                item.model, "taylor", batches, objective, batches=args.importance_batches
            )
        smaller = pruning.prune_structured(
            item.model, args.heads_fraction, args.ffn_fraction, scores=scores
        )
        record = pruning.describe_structured(
            item.model, smaller, method, args.heads_fraction, args.ffn_fraction
        )
        item.model = smaller
        training = _fine_tune(item, objective, args) if args.steps else None
    record["fine_tuning"] = training
    steps = list(item.metadata.get("compression") or [])
    item.metadata = {**item.metadata, "compression": [*steps, record]}
    item.save(output)
    return write_report(args, source_folder, original, item, output)


# --------------------------------------------------------------------- distill
DISTILL_EPILOG = """\
examples:
  kerasllm compress distill --teacher runs/sentiment/bundle --student bert_tiny \\
      --data rotten_tomatoes --steps 400 --temperature 2 --alpha 0.9 --output runs/s_tiny
  kerasllm compress distill --teacher translate_en_fr --student transformer_tiny \\
      --override hidden_dim=192 --override intermediate_dim=768 --override num_layers=2 \\
      --override num_decoder_layers=1 --data bible --kind sequence --steps 2000 \\
      --output runs/fr_kd
"""


def _add_distill_parser(methods) -> None:
    from kerasllm.cli.pretrain import _key_value

    distill = methods.add_parser(
        "distill",
        help="Knowledge distillation: train a smaller student on a teacher bundle's outputs.",
        description=DESCRIPTION,
        epilog=DISTILL_EPILOG,
    )
    distill.add_argument(
        "--teacher",
        required=True,
        metavar="BUNDLE_OR_PRESET",
        help="The teacher: a trained task-model bundle, or a preset that is one.",
    )
    distill.add_argument(
        "--student",
        required=True,
        metavar="PRESET",
        help="The student's zoo preset (built on the teacher's tokenizer and classes).",
    )
    distill.add_argument(
        "--override",
        "--set",  # the spelling of `kerasllm pretrain` / `finetune`
        dest="overrides",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="Change a student hyperparameter, e.g. --override num_layers=2 (repeatable; --set is "
        "the same flag). Default: none, the preset's own.",
    )
    distill.add_argument("--output", required=True, metavar="DIR", help="Where the bundle goes.")
    distill.add_argument(
        "--kind",
        choices=("word", "sequence", "none"),
        default="word",
        help="word: the teacher's soft targets at every example/token (+ hidden states with "
        "--hidden-weight); sequence (seq2seq): train on the teacher's beam-search outputs "
        "(Kim & Rush 2016); none: the student on the labels alone (the baseline).",
    )
    distill.add_argument("--temperature", type=float, default=2.0, help="word: softmax T.")
    distill.add_argument(
        "--alpha", type=float, default=0.5, help="word: weight of the teacher term in [0, 1]."
    )
    distill.add_argument(
        "--hidden-weight",
        type=float,
        default=0.0,
        help="word: weight of the TinyBERT hidden-state MSE (uniform layer map; 0: off).",
    )
    distill.add_argument(
        "--attention-weight",
        type=float,
        default=0.0,
        help="word: weight of the TinyBERT self-attention logit MSE (uniform layer map; "
        "0: off; head means when the head counts differ).",
    )
    distill.add_argument(
        "--sampler",
        choices=("beam", "greedy"),
        default="beam",
        help="sequence: how the teacher writes the training targets.",
    )
    distill.add_argument(
        "--sequence-corpus",
        default=None,
        metavar="FILE",
        help="sequence: where the teacher's corpus goes (resumed if partly written). "
        "Default: OUTPUT.teacher.tsv beside --output.",
    )
    _add_training_flags(
        distill,
        steps=1000,
        steps_help="Student training updates.",
        learning_rate=1e-3,
        seconds_help="Stop training after this many seconds. Default: no limit.",
    )
    distill.add_argument(
        "--train-examples",
        type=int,
        default=None,
        metavar="N",
        help="seq2seq: train on the first N training pairs only (every --kind alike: the "
        "teacher translates only those for --kind sequence). Default: all.",
    )
    _inference.add_evaluation_flags(
        distill,
        data_required=True,
        data_help="Train on this corpus's training split (or file); evaluate teacher and "
        "student on --split (as `kerasllm evaluate`); also the texts timed.",
    )
    distill.add_argument(
        "--benchmark-size", type=int, default=64, metavar="N", help="Texts per timed pass."
    )
    distill.add_argument("--repeats", type=int, default=3, metavar="N", help="Timed passes.")
    distill.set_defaults(func=_distill)


def _check_distill(args) -> None:
    _check(args)
    for flag, value, low in (
        ("--steps", args.steps, 1),
        ("--train-batch-size", args.train_batch_size, 1),
        ("--train-examples", args.train_examples or 1, 1),
    ):
        if value < low:
            raise ValueError(f"{flag} must be an integer >= {low}; got {value}.")
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0; got {args.temperature}.")
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1]; got {args.alpha}.")
    if args.hidden_weight < 0:
        raise ValueError(f"--hidden-weight must be >= 0; got {args.hidden_weight}.")
    if not args.attention_weight >= 0:
        raise ValueError(f"--attention-weight must be >= 0; got {args.attention_weight}.")


def _train_student(student_item, model_fn, objective, data: str, args) -> dict:
    """The student (alone, or inside a `DistillationModel` with its teacher) trained by
    `_train`, built by the Trainer in its strategy scope."""
    return _train(student_item, model_fn, objective, data, args, warmup_divisor=10)


def _distill(args) -> int:
    import keras

    from kerasllm import bundle as bundle_lib
    from kerasllm.cli import evaluate as evaluate_cli
    from kerasllm.compression import distillation
    from kerasllm.training import inputs

    _check_distill(args)
    args.model = args.teacher  # the report and `evaluate` name the original model --model
    output = Path(args.output)
    source_folder, original = _load_bundle(args.teacher)
    if output.resolve() == source_folder.resolve():
        raise ValueError("--output must differ from --teacher's folder (it would be replaced).")
    teacher = original.model
    objective = evaluate_cli.objective_of(teacher, args.teacher)
    if args.kind == "sequence" and objective != "seq2seq":
        raise ValueError(f"--kind sequence needs a seq2seq teacher; --teacher is {objective}.")
    if args.train_examples is not None and objective != "seq2seq":
        raise ValueError(f"--train-examples needs a seq2seq teacher; --teacher is {objective}.")
    overrides = dict(args.overrides)

    def student_fn():  # called by the Trainer: in its strategy scope and precision
        return distillation.build_student(args.student, teacher, **overrides)

    try:  # checks --student and --override before anything runs; lengths for the data
        student = student_fn()
    except (ValueError, TypeError) as error:
        raise ValueError(f"--student/--override: {error}") from None
    metadata = {k: v for k, v in original.metadata.items() if k != "compression"}
    item = bundle_lib.Bundle(student, original.tokenizers, metadata)
    data = args.data
    pairs = None
    if objective == "seq2seq":
        pairs = list(inputs.load_corpus(objective, data).train)[: args.train_examples]
        if args.train_examples is not None and args.kind != "sequence":
            # The same first pairs as the teacher translates for --kind sequence, as a file
            # the seq2seq pipeline reads (its every 20th pair is held out, for both).
            data = os.fspath(distillation.write_tsv_pairs(f"{output}.train.tsv", pairs))
    record: dict = {
        "method": "distillation",
        "teacher": args.teacher,
        "student": args.student,
        "overrides": overrides,
        "kind": args.kind,
        "keras_version": keras.__version__,
    }
    if args.kind == "word":
        base = distillation.Distillation(
            objective,
            args.temperature,
            args.alpha,
            args.hidden_weight,
            attention_weight=args.attention_weight,
        )

        def model_fn():  # inside the trainer's strategy scope, the teacher loaded there too
            return distillation.DistillationModel(
                student_fn,
                lambda: _load_bundle(args.teacher)[1].model,
                hidden_layers=args.hidden_weight > 0,
                attention_layers=args.attention_weight > 0,
            )

        record.update(
            temperature=args.temperature,
            alpha=args.alpha,
            hidden_weight=args.hidden_weight,
            attention_weight=args.attention_weight,
        )
        record["scheme"] = (
            f"word-level distillation from {args.teacher} into {args.student} "
            f"(T={args.temperature}, alpha={args.alpha}, hidden_weight={args.hidden_weight}, "
            f"attention_weight={args.attention_weight})"
        )
        training = _train_student(item, model_fn, base, data, args)
        item.model = training.pop("model").student
    else:
        if args.kind == "sequence":
            sources = [source for source, _ in pairs]
            path = Path(args.sequence_corpus or f"{output}.teacher.tsv")
            # A finished corpus is reused as it is (`sequence_level_corpus` keeps it): who wrote
            # it, and how, is then not known here, and the record must not claim --sampler.
            reused = path.is_file()
            began = time.perf_counter()
            max_new = args.max_new_tokens or evaluate_cli.default_max_new_tokens(
                _inference.Loaded(teacher, dict(original.metadata))
            )
            distillation.sequence_level_corpus(
                teacher,
                sources,
                path,
                batch_size=args.batch_size,
                max_new_tokens=max_new,
                sampler=args.sampler,
            )
            lines = path.read_text("utf-8").splitlines()
            written = sum(bool(line.split("\t")[1].strip()) for line in lines)
            if not written:
                raise ValueError(
                    f"The teacher wrote only empty outputs into {path}: nothing to train on "
                    "(is --teacher trained? try --max-new-tokens)."
                )
            record["sequence_corpus"] = {
                "nonempty_outputs": written,
                "path": os.fspath(path),
                "sampler": None if reused else args.sampler,
                "reused": reused,
                "sources": len(sources),
                "seconds": round(time.perf_counter() - began, 1),
            }
            data = os.fspath(path)
            outputs = f"outputs read from {path.name}" if reused else f"{args.sampler} outputs"
            record["scheme"] = (
                f"sequence-level distillation ({outputs} of {args.teacher}) into {args.student}"
            )
        else:
            record["scheme"] = f"{args.student} trained on the labels alone (no teacher)"
        training = _train_student(item, student_fn, objective, data, args)
        item.model = training.pop("model")
    record["training"] = training
    item.metadata = {**item.metadata, "compression": [record]}
    item.save(output)
    # Measured as users get it: loaded back, with the preprocessor `bundle.load` attaches.
    return write_report(args, source_folder, original, bundle_lib.load(output), output)
