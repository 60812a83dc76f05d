"""Reads a translation model card (examples/translation/model_card.py) back into fields, so that
tests compare its content with the metadata and reports it was written from instead of
matching its wording."""

from __future__ import annotations

import json
import re

_RUN = re.compile(r"^\s+(\d+)\. steps (\d+) -> (\d+) in (.*)$")
_START = re.compile(
    r"^\s+then from the weights of `([^`]*)` \(step (\d+|None)\)(.*)\(`--init_from`\):$"
)
_TIMED = re.compile(r"^(?:about )?([0-9.]+) s")


def sections(text: str) -> dict[str, list[str]]:
    """`{"title": [title], "Data and licence": [...], "Training": [...], ...}`."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            out["title"] = [line[2:]]
        elif line.startswith("## "):
            current = line[3:]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def fields(lines: list[str]) -> dict[str, str]:
    """The `- Name: value` items of a section, continuation lines joined with single spaces
    (a numbered sub-list stays out: `runs` reads it)."""
    items: dict[str, str] = {}
    name = None
    for line in lines:
        match = re.match(r"^- ([A-Z][^:]*): (.*)$", line)
        if match:
            name = match.group(1)
            items[name] = match.group(2)
        elif name and line.startswith("  ") and not _RUN.match(line) and not _START.match(line):
            items[name] += " " + line.strip()
        elif not line.startswith("  "):
            name = None
    return items


def runs(lines: list[str]) -> list[dict]:
    """The numbered training runs: number, steps, seconds (None: unknown), hardware, command,
    interrupted, unrecorded, `start` (the bundle path a run's group started from) and `grown`."""
    out, start, grown = [], None, {}
    for line in lines:
        started = _START.match(line)
        if started:
            start = started.group(1)
            grown = {
                stack: [int(a), int(b)]
                for a, b, stack in re.findall(r"(\d+) to (\d+) (encoder|decoder) layers", line)
            }
            continue
        match = _RUN.match(line)
        if not match:
            continue
        rest = match.group(4)
        unrecorded = "a run killed before it could record itself" in rest
        timed = _TIMED.match(rest)
        command = re.search(r": `(.*)`$", rest)
        hardware = re.match(r"^[0-9.]+ s on (.*?)(?: \(interrupted\))?: `", rest)
        out.append(
            {
                "number": int(match.group(1)),
                "steps": [int(match.group(2)), int(match.group(3))],
                "seconds": float(timed.group(1)) if timed else None,
                "hardware": hardware.group(1) if hardware else None,
                "command": command.group(1) if command else None,
                "interrupted": "(interrupted)" in rest,
                "unrecorded": unrecorded,
                "start": start,
                # {"encoder" / "decoder": [layers before, after]} of an `--init_from` growth.
                "grown": {} if start is None else dict(grown),
            }
        )
    return out


def quality_table(lines: list[str]) -> list[dict]:
    """The rows of the Quality table: split, verses, bleu, chrf, translate_seconds."""
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| split")]
    out = []
    for row in rows:
        split, verses, bleu, chrf, seconds = [cell.strip() for cell in row.strip("|").split("|")]
        out.append(
            {
                "split": split,
                "verses": int(verses),
                "bleu": float(bleu),
                "chrf": float(chrf),
                "translate_seconds": float(seconds),
            }
        )
    return out


def parse_card(text: str) -> dict:
    """The card's content as data: `title`, `steps` (of this bundle's own runs), `total_steps`
    (since random initialization), `train_seconds_total`, `run_count`, `weights_steps` (the
    step of the bundled weights, or the averaged steps), `data` and `training` (their
    `- Name: value` fields), `recipe`
    (the JSON of its Recipe field), `runs`, `quality` (table rows), `signature` and `examples`
    (`{"source", "reference", "translation"}` each)."""
    parts = sections(text)
    training = fields(parts["Training"])
    recipe = re.fullmatch(r"`(.*)`", training["Recipe"])
    signature = re.search(r"\(`([^`]*)`\)", " ".join(parts["Quality"]))
    examples, current = [], None
    for line in parts["Quality"]:
        if line.startswith("- EN: "):
            current = {"source": line[len("- EN: ") :]}
            examples.append(current)
        elif line.startswith("  - reference: "):
            current["reference"] = line[len("  - reference: ") :]
        elif line.startswith("  - model: "):
            current["translation"] = line[len("  - model: ") :]
    steps = re.match(
        r"(\d+)(?: after initialization, (\d+) in all)?; training time ([0-9.]+|None) s .* in "
        r"(\d+) run\(s\)",
        training["Steps"],
    )
    weights = training["Weights"]
    averaged = re.search(r"checkpoints at steps ([\d, ]+) \(", weights)
    single = re.search(r"(?:the last step \(|the checkpoint at step )(\d+)", weights)
    return {
        "title": parts["title"][0],
        "steps": int(steps.group(1)),
        "total_steps": int(steps.group(2) or steps.group(1)),
        "train_seconds_total": None if steps.group(3) == "None" else float(steps.group(3)),
        "run_count": int(steps.group(4)),
        "weights_steps": [int(v) for v in averaged.group(1).split(", ")]
        if averaged
        else [int(single.group(1))],
        "data": fields(parts["Data and licence"]),
        "training": training,
        "recipe": json.loads(recipe.group(1)),
        "runs": runs(parts["Training"]),
        "quality": quality_table(parts["Quality"]),
        "signature": signature.group(1) if signature else None,
        "examples": examples,
    }


def sources_by_run(value: str) -> dict[tuple[int, int], list[str]]:
    """The "Sources by training run" field as `{(first run, last run): [extra version codes]}`
    (`[]`: the World English Bible alone)."""
    out = {}
    for part in value.split("; "):
        match = re.match(r"runs? (\d+)(?:-(\d+))?: (.*)", part)
        first = int(match.group(1))
        out[(first, int(match.group(2) or first))] = re.findall(r"\(`(\w+)`\)", match.group(3))
    return out
