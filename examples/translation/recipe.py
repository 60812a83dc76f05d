"""The English-to-French recipe: tokenizer, data, model and training, end to end.

Everything goes through the library's own pieces: `kerasllm.tokenizers` (a joint SentencePiece
vocabulary, so names and numbers copy across and the embedding matrix is shared by encoder,
decoder and output), `kerasllm.datasets` (the Bible split), `kerasllm.data` (static length
buckets with token-budget batches), `kerasllm.zoo` (a `transformer_*` preset),
`kerasllm.training.Trainer` (checkpoints, resume, TensorBoard), `kerasllm.text_to_text` and
`kerasllm.metrics` (validation BLEU) and `kerasllm.bundle` (the shipped directory). This
application is not part of the library: `examples/translate.py --train` runs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import time
from pathlib import Path

from kerasllm import bundle as bundle_lib
from kerasllm import data, datasets, tokenizers, zoo
from kerasllm.text_to_text import TextToText
from kerasllm.training import Trainer, TrainerConfig
from kerasllm.training.checkpointing import (
    average_checkpoints,
    load_model_weights,
    write_json_atomic,
)
from kerasllm.training.growth import grow_depth

from .evaluation import evaluate

TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
# Recipe fields a resumed run may change (how long, how often, and how steps execute: XLA and
# graph mode compute the same updates); everything else must match the first run.
PER_RUN_FIELDS = ("steps", "max_train_seconds", "eval_every", "checkpoint_every", "jit_compile")


@dataclasses.dataclass
class Recipe:
    """Hyperparameters of a translation training run (most are `--flags` of
    `examples/translate.py --train`).

    The defaults: `transformer_small` widths (d=256) with a 4-layer encoder and a 2-layer
    decoder, pre-norm, no dropout, a joint 8k SentencePiece vocabulary, label smoothing 0.1,
    AdamW with warmup then inverse-square-root decay, and static length buckets, so each bucket
    is one graph and no batch carries more padding than its bucket needs; training steps are
    XLA-compiled (one compilation per bucket; 1.5x the tokens/s of graph mode on this project's
    2-core CPU). The 40-minute runs add `decay="linear"` with a time budget; the shipped model
    also `dropout=0.1` and `extra_sources=("k", "3")` (docs/translation.md).
    """

    src: str = "4"
    tgt: str = "l"
    # More versions of `src`'s language, each paired verse by verse with the same `tgt` training
    # verses: source-side paraphrases, e.g. ("k", "3"), the King James Version (1611) and the
    # Bible in Basic English (1949), both public domain. Validation and test keep `src` alone.
    extra_sources: tuple[str, ...] = ()
    preset: str = "transformer_small"
    encoder_layers: int | None = 4  # None keeps the preset's depth
    decoder_layers: int | None = 2
    norm_first: bool = True
    dropout: float = 0.0
    # On attention probabilities; None: `dropout`. 0 with `dropout` > 0 is residual-only dropout
    # (fairseq's default), about 4% faster per step here.
    attention_dropout: float | None = None
    vocabulary_size: int = 8000
    tokenizer_model: str = "unigram"
    # Subword regularization (Kudo 2018): training pairs are tokenized with a segmentation
    # sampled among the `subword_nbest` best at inverse temperature `subword_alpha` (None: the
    # most likely one, as evaluation and inference always use). Unigram vocabularies only.
    subword_alpha: float | None = None
    subword_nbest: int = 64
    source_length: int = 128
    target_length: int = 128
    batch_size: int = 24  # sentences per batch at full length; shorter buckets hold more
    bucket_boundaries: tuple[int, ...] = (16, 24, 32, 40, 48, 64, 80, 96)
    steps: int = 20000
    max_train_seconds: float | None = None
    learning_rate: float = 1e-3
    warmup_steps: int = 400
    decay: str = "inverse_sqrt"
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    clipnorm: float | None = 1.0
    # "auto": the hardware's fastest (`kerasllm.hardware`): mixed_bfloat16 without XLA on CPUs
    # with AMX / AVX-512 BF16 (XLA does not use them), float32 with XLA (static buckets: one
    # compilation per bucket shape) on other CPUs. The 40-minute run with "auto" on an AVX-512
    # BF16 CPU beat the float32 + XLA run r4 (test BLEU 16.77 against 15.19 greedy;
    # docs/translation.md), which made it the default.
    jit_compile: bool | str = "auto"
    precision: str = "auto"
    eval_every: int = 1000
    checkpoint_every: int = 500
    seed: int = 0
    # A translation bundle to start from (its weights and tokenizer) instead of random weights:
    # a warm start with a fresh optimizer and learning-rate schedule. Its architecture must be
    # the one this recipe builds, except that deeper encoder/decoder stacks (pre-norm) grow it:
    # the layers it lacks start as the identity (`kerasllm.training.grow_depth`). Its training
    # history carries into the new bundle's metadata.
    init_from: str | None = None

    def model_overrides(self, vocabulary_size: int) -> dict:
        overrides = {
            "vocabulary_size": vocabulary_size,
            "norm_first": self.norm_first,
            "dropout": self.dropout,
            "max_sequence_length": max(self.source_length, self.target_length),
        }
        if self.attention_dropout is not None:
            overrides["attention_dropout"] = self.attention_dropout
        if self.encoder_layers is not None:
            overrides["num_layers"] = self.encoder_layers
        if self.decoder_layers is not None:
            overrides["num_decoder_layers"] = self.decoder_layers
        return overrides


def training_pairs(recipe: Recipe) -> list[tuple[str, str]]:
    """The (source, target) training verses: `src` -> `tgt`, then each of `extra_sources` ->
    `tgt` (the same target verses again, with another source version)."""
    return [pair for group in _pairs_by_source(recipe) for pair in group]


def _pairs_by_source(recipe: Recipe) -> list[list[tuple[str, str]]]:
    sources = [recipe.src, *recipe.extra_sources]
    if len(set(sources)) != len(sources) or recipe.tgt in sources:
        raise ValueError(
            f"`extra_sources` must be versions other than `src` ({recipe.src!r}) and `tgt` "
            f"({recipe.tgt!r}), each once; got {list(recipe.extra_sources)}."
        )
    return [
        datasets.parallel_corpus("bible", src=source, tgt=recipe.tgt, split="train")
        for source in sources
    ]


def build_tokenizer(recipe: Recipe, model_dir: Path, verbose: int = 1):
    """Trains the joint source+target SentencePiece vocabulary once, on the training verses
    (the target verses once, however many source versions pair with them); later runs reload
    it, so a resumed run keeps the ids its checkpoints were trained with."""
    path = model_dir / TOKENIZER_DIR
    if (path / "tokenizer.json").exists():
        return tokenizers.load(path)
    if recipe.init_from is not None:
        tokenizer = bundle_lib.load_tokenizers(recipe.init_from)["source"]
        tokenizer.save(path)
        return tokenizer
    first, *extra = _pairs_by_source(recipe)
    texts = [text for pair in first for text in pair]
    texts += [source for group in extra for source, _ in group]
    if verbose:
        print(f"Training a {recipe.vocabulary_size}-piece SentencePiece vocabulary ...", flush=True)
    tokenizer = tokenizers.train_sentencepiece(
        texts, recipe.vocabulary_size, model_type=recipe.tokenizer_model
    )
    tokenizer.save(path)
    return tokenizer


def make_datasets(recipe: Recipe, tokenizer, train_pairs: list[tuple[str, str]]):
    """(dataset of `train_pairs` repeated forever, validation dataset, training stats).

    With `recipe.subword_alpha`, the training pairs get sampled segmentations; validation keeps
    the most likely one."""
    common = dict(
        source_length=recipe.source_length,
        target_length=recipe.target_length,
        batch_size=recipe.batch_size,
        bucketing="static",
        bucket_boundaries=list(recipe.bucket_boundaries),
    )
    valid_pairs = datasets.parallel_corpus(
        "bible", src=recipe.src, tgt=recipe.tgt, split="validation"
    )
    train_tokenizer = tokenizer
    if recipe.subword_alpha is not None:
        train_tokenizer = tokenizer.with_sampling(recipe.subword_alpha, recipe.subword_nbest)
    train, stats = data.seq2seq_dataset(
        train_pairs, train_tokenizer, train_tokenizer, seed=recipe.seed, repeat=True, **common
    )
    valid, _ = data.seq2seq_dataset(valid_pairs, tokenizer, tokenizer, shuffle=False, **common)
    return train, valid, stats


def train(
    recipe: Recipe,
    model_dir: str | Path,
    verbose: int = 1,
    command: str | None = None,
    bundle_weights: str | None = None,
) -> bundle_lib.Bundle:
    """Trains (or resumes) a translation model in `model_dir` and writes its bundle to
    `model_dir/bundle`.

    The bundle holds the model as training left it, or, with `bundle_weights`, the weights of
    one of its checkpoints: "best" (`checkpoints/best`, the evaluation with the best greedy
    validation BLEU; every evaluation also reports the validation loss and chrF), a step
    number (`checkpoints/ckpt-STEP`) or a checkpoint path; or "average:N", the mean weights of
    the N newest checkpoints, whatever their spacing (the run keeps max(3, N); the newest is the
    last step's), recorded as `averaged_steps` in the metadata (`weights_step`: the newest).

    `model_dir` holds the tokenizer, the checkpoints (resume by running again), the TensorBoard
    logs (`checkpoints/train`, `checkpoints/eval`) and `training_runs.json`: one entry per run
    (command, steps from and to, training seconds), so a model trained over several resumed runs
    reports its whole history and total training time.
    """
    average = None
    if bundle_weights is not None:
        average = _average_count(bundle_weights)  # a bad choice fails now, not after training
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = model_dir / "recipe.json"
    if recipe_path.exists():
        # A field newer than the run's recipe.json had its default value in that run.
        previous = {**dataclasses.asdict(Recipe()), **json.loads(recipe_path.read_text())}
        changed = {
            k for k, v in dataclasses.asdict(recipe).items()
            if _comparable(previous[k]) != _comparable(v) and k not in PER_RUN_FIELDS
        }  # fmt: skip
        if changed:
            raise ValueError(
                f"{model_dir} was trained with a different recipe ({sorted(changed)} differ); "
                "use a new --model-dir or the same settings to resume."
            )
    # A mismatched bundle fails before any writes.
    start_bundle = None if recipe.init_from is None else _initial_bundle(recipe)
    recipe_path.write_text(json.dumps(dataclasses.asdict(recipe), indent=2) + "\n")

    tokenizer = build_tokenizer(recipe, model_dir, verbose)
    train_pairs = training_pairs(recipe)
    train_data, valid_data, stats = make_datasets(recipe, tokenizer, train_pairs)
    overrides = recipe.model_overrides(tokenizer.vocabulary_size)
    config = TrainerConfig(
        model_dir=str(model_dir / CHECKPOINT_DIR),
        steps=recipe.steps,
        learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        decay=recipe.decay,
        weight_decay=recipe.weight_decay,
        clipnorm=recipe.clipnorm,
        label_smoothing=recipe.label_smoothing,
        jit_compile=recipe.jit_compile,
        precision=recipe.precision,
        checkpoint_every=recipe.checkpoint_every,
        keep_checkpoints=max(3, average or 0),
        eval_every=recipe.eval_every,
        log_every=50,
        steps_per_loop=10,  # short loops: the time budget and Ctrl-C are checked between them
        best_metric="bleu",  # validation BLEU: it kept rising after the loss turned up
        seed=recipe.seed,
        max_train_seconds=recipe.max_train_seconds,
        verbose=verbose,
    )

    def build_model():
        # A resumed run's checkpoint replaces these initial weights.
        if start_bundle is None:
            return zoo.get(recipe.preset, task="seq2seq_lm", weights=None, **overrides)
        weights = str(Path(recipe.init_from) / bundle_lib.WEIGHTS_FILENAME)
        if "grown" not in start_bundle:
            return zoo.get(recipe.preset, task="seq2seq_lm", weights=weights, **overrides)
        source = zoo.get(
            recipe.preset, task="seq2seq_lm", weights=weights, **start_bundle["model_overrides"]
        )
        model = zoo.get(recipe.preset, task="seq2seq_lm", weights=None, **overrides)
        added = grow_depth(model, source)
        if verbose:
            print(f"Grown from {recipe.init_from}: {', '.join(added)} start as the identity.")
        return model

    def validation_scores(model) -> dict:
        """Greedy validation BLEU and chrF of the model being trained."""
        lengths = {"source_length": recipe.source_length, "target_length": recipe.target_length}
        translator = TextToText(bundle_lib.Bundle(model, {"source": tokenizer}, lengths))
        report = evaluate(translator.generate, "validation", src=recipe.src, tgt=recipe.tgt)
        return {"bleu": report["bleu"], "chrf": report["chrf"]}

    trainer = Trainer(build_model, "seq2seq", config, metrics_fn=validation_scores)
    first_step = trainer.step
    start = time.perf_counter()
    try:
        history = trainer.fit(train_data, valid_data)
    except KeyboardInterrupt:
        # The trainer saved a checkpoint; record the run too, so the next run's model card
        # still lists every step and second that went into the model.
        _record_run(
            model_dir,
            command,
            first_step,
            trainer.step,
            time.perf_counter() - start,
            metrics=None,  # not known for an interrupted run
            padding_fraction=stats.padding_fraction,
        )
        raise
    seconds = time.perf_counter() - start
    runs = _record_run(
        model_dir,
        command,
        first_step,
        history["step"],
        seconds,
        metrics=history.get("train", {}),
        padding_fraction=stats.padding_fraction,
    )
    weights_steps = [history["step"]]
    if bundle_weights is not None:
        weights_steps = _load_bundle_weights(trainer, model_dir, bundle_weights, average)
    metadata = {
        "task": "translation",
        "source_language": "en",
        "target_language": "fr",
        "data": f"Bible, versions {recipe.src} -> {recipe.tgt}, train split (29,793 verses)"
        + "".join(f", plus {v} -> {recipe.tgt}" for v in recipe.extra_sources)
        + f": {len(train_pairs):,} pairs",
        "preset": recipe.preset,
        "model_overrides": overrides,
        "source_length": recipe.source_length,
        "target_length": recipe.target_length,
        "recipe": dataclasses.asdict(recipe),
        "steps": history["step"],
        "weights_step": weights_steps[-1],
        **({"averaged_steps": weights_steps} if len(weights_steps) > 1 else {}),
        "train_seconds_this_run": round(seconds, 1),
        "train_seconds_total": round(
            sum(run["seconds"] or 0 for run in runs)
            + ((start_bundle or {}).get("train_seconds_total") or 0),
            1,
        ),
        "training_runs": runs,
        **({"initialized_from": start_bundle} if start_bundle else {}),
        "validation": history.get("eval", {}),
        "padding_fraction": _trained_padding_fraction(runs),
        "hardware": hardware_description(),
    }
    bundle = bundle_lib.Bundle(trainer.model, {"source": tokenizer, "target": tokenizer}, metadata)
    bundle.save(model_dir / "bundle")
    return bundle


_GROWABLE = ("num_layers", "num_decoder_layers")


def _initial_bundle(recipe: Recipe) -> dict:
    """What `recipe.init_from` names: its path, steps, recipe, validation scores and training
    history (the `initialized_from` metadata of the bundles trained from it), plus `grown` (key:
    [its depth, the recipe's]) and its `model_overrides` when the recipe's stacks are deeper.
    Raises a ValueError unless it is a translation bundle of the architecture `recipe` builds,
    deeper pre-norm stacks aside."""
    path = Path(recipe.init_from)
    metadata = bundle_lib.load_metadata(path)  # FileNotFoundError unless a bundle
    if metadata.get("task") != "translation" or "model_overrides" not in metadata:
        raise ValueError(f"init_from={str(path)!r} is not a translation bundle of this recipe.")
    wanted = {"preset": recipe.preset, **recipe.model_overrides(recipe.vocabulary_size)}
    found = {"preset": metadata.get("preset"), **metadata["model_overrides"]}
    # Deeper stacks than the bundle's grow it (`kerasllm.training.grow_depth`); pre-norm only.
    grown = {
        key: [found[key], wanted[key]]
        for key in _GROWABLE
        if wanted.get("norm_first")
        and isinstance(found.get(key), int)
        and isinstance(wanted.get(key), int)
        and wanted[key] > found[key]
    }
    differ = sorted(
        k for k in {*wanted, *found} if wanted.get(k) != found.get(k) and k not in grown
    )
    if differ:
        raise ValueError(
            f"init_from={str(path)!r} is another architecture than this recipe's: "
            + ", ".join(f"{k} {found.get(k)!r} there, {wanted.get(k)!r} here" for k in differ)
            + f" (only {' and '.join(_GROWABLE)} may grow, with norm_first)."
        )
    # Its recipe names the data its own runs trained on (the model card lists it per run).
    keep = (
        "steps",
        "weights_step",
        "train_seconds_total",
        "training_runs",
        "recipe",
        "initialized_from",
    )
    return {
        "path": str(path),
        "validation": metadata.get("validation", {}),
        **{k: metadata[k] for k in keep if k in metadata},
        **({"grown": grown, "model_overrides": metadata["model_overrides"]} if grown else {}),
    }


def _load_bundle_weights(
    trainer: Trainer, model_dir: Path, which: str, count: int | None
) -> list[int]:
    """Loads the weights `which` names ("best", a step, "average:N" or a checkpoint path) into
    the trained model; `count` is N of "average:N" (as `_average_count` parsed it), else None.
    Returns the step(s) the weights come from (-1 for a path without one)."""
    checkpoints = model_dir / CHECKPOINT_DIR
    if count:
        newest = trainer.checkpointer.candidates()[:count]
        if len(newest) < count:
            raise ValueError(
                f"bundle_weights={which!r}: {checkpoints} holds only {len(newest)} checkpoint(s)."
            )
        average_checkpoints(trainer.model, newest)
        return sorted(_checkpoint_step(path) for path in newest)
    if which == "best":
        record = trainer.checkpointer.best_record()
        if record is None:
            raise ValueError(f"No best checkpoint in {checkpoints}; train with validation first.")
        path = checkpoints / "best" / record["checkpoint"]
    elif which.isdigit():
        path = checkpoints / f"ckpt-{int(which)}"
    else:
        path = Path(which)
    if not Path(f"{path}.index").exists():
        raise FileNotFoundError(f"No checkpoint {path} (bundle_weights={which!r}).")
    load_model_weights(trainer.model, path, require_all=True)
    return [_checkpoint_step(path)]


def _average_count(which: str) -> int | None:
    """Checks a `bundle_weights` choice before training; returns N of "average:N", else None.

    A checkpoint path must exist already (a step number may name one the run will write)."""
    match = re.fullmatch(r"average:([0-9]+)", which)
    if match and int(match.group(1)) >= 2:
        return int(match.group(1))
    if which == "best" or re.fullmatch(r"[0-9]+", which):
        return None
    if not which.lower().startswith(("average", "avg")) and Path(f"{which}.index").exists():
        return None
    raise ValueError(
        f"bundle_weights must be 'best', a step number, 'average:N' with N >= 2, or the path of "
        f"an existing checkpoint (PATH.index); got {which!r}."
    )


def _checkpoint_step(path: str | Path) -> int:
    step = re.search(r"ckpt-(\d+)$", str(path))
    return int(step.group(1)) if step else -1


def hardware_description() -> str:
    """What trained the model, e.g. "x86_64, 2 CPU cores" or "x86_64, 16 CPU cores, 1 x
    NVIDIA H100 80GB HBM3" (the GPUs TensorFlow sees)."""
    import tensorflow as tf

    parts = [platform.machine() or platform.processor(), f"{os.cpu_count()} CPU cores"]
    gpus = [
        tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    for name in sorted(set(gpus)):
        parts.append(f"{gpus.count(name)} x {name}")
    return ", ".join(parts)


def _record_run(
    model_dir: Path,
    command: str | None,
    first: int,
    last: int,
    seconds: float,
    metrics: dict | None = None,
    padding_fraction: float | None = None,
) -> list[dict]:
    """Appends this run to `model_dir/training_runs.json` (atomically) and returns all runs.

    `metrics` is None for an interrupted run (its last training metrics are not known);
    `padding_fraction` is that of the training batches this run drew."""
    path = model_dir / "training_runs.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    if last > first:
        tokens_per_second = None if metrics is None else metrics.get("tokens_per_second")
        runs.append(
            {
                "command": command,
                "steps": [first, last],
                "seconds": round(seconds, 1),
                "last_tokens_per_second": None
                if tokens_per_second is None
                else round(float(tokens_per_second), 1),
                "hardware": hardware_description(),
                **(
                    {}
                    if padding_fraction is None
                    else {"padding_fraction": round(padding_fraction, 4)}
                ),
                **({"interrupted": True} if metrics is None else {}),
            }
        )
    filled = _with_unrecorded_runs(model_dir, runs)
    if filled != runs or last > first:
        write_json_atomic(path, filled)
    return filled


def _trained_padding_fraction(runs: list[dict]) -> float | None:
    """Padding fraction of the batches the model trained on: the runs' fractions weighted by
    their steps (runs that did not record one are left out; None when none did). A run that
    trains no steps, e.g. one that only bundles, draws no batches and adds nothing."""
    spans = [
        (run["padding_fraction"], run["steps"][1] - run["steps"][0])
        for run in runs
        if run.get("padding_fraction") is not None
    ]
    steps = sum(span for _, span in spans)
    return round(sum(f * span for f, span in spans) / steps, 4) if steps else None


def _with_unrecorded_runs(model_dir: Path, runs: list[dict]) -> list[dict]:
    """`runs` plus an entry for each step range no recorded run covers: a run killed outright
    (SIGKILL, a machine shut down) records nothing, yet the next run resumes from its last
    checkpoint. Its seconds are estimated from the TensorBoard training log's wall times."""
    filled, end = [], 0
    for run in runs:
        start = run["steps"][0]
        if start > end:
            rate = _logged_seconds_per_step(model_dir, end, start)
            filled.append(
                {
                    "command": None,
                    "steps": [end, start],
                    "seconds": None if rate is None else round(rate * (start - end), 1),
                    "unrecorded": True,
                }
            )
        filled.append(run)
        end = max(end, run["steps"][1])
    return filled


def _logged_seconds_per_step(model_dir: Path, first: int, last: int) -> float | None:
    """Seconds per training step between steps `first` and `last`, from the wall times of the
    TensorBoard training log (one file per run) that logged most steps in that range; None
    without two such steps."""
    import tensorflow as tf

    best = None
    for file in sorted((model_dir / CHECKPOINT_DIR / "train").glob("events.out.tfevents.*")):
        times = {}
        for record in tf.data.TFRecordDataset(str(file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if event.summary.value and first <= event.step <= last:
                times.setdefault(event.step, event.wall_time)
        if len(times) >= 2 and (best is None or len(times) > best[0]):
            low, high = min(times), max(times)
            best = (len(times), (times[high] - times[low]) / (high - low))
    return None if best is None else best[1]


def _comparable(value):
    return list(value) if isinstance(value, tuple) else value
