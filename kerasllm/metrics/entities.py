"""Entity-level NER scores, as the field reports them (CoNLL `conlleval`, `seqeval`).

An entity is a maximal chunk of words with one type, decoded from BIO tags the way `seqeval`
(default mode, the CoNLL evaluation script's rules) decodes them: a chunk starts at `B-X`, or at
`I-X` after `O` or after a tag of another type (an `I-` without its `B-` still opens an entity,
it is "repaired"), and continues over the following `I-X`. A predicted entity counts as correct
only when its first word, last word and type all equal a true entity's (exact match); precision
is correct / predicted entities, recall correct / true entities, F1 their harmonic mean, summed
over all sentences (micro average), and per type.

The scores are `seqeval`'s own (`entity_report` calls it). What `seqeval` does not provide is
here: the per-word tags of a `TokenClassifier` (its `predict` on texts returns one row of logits
per word, from each word's first sub-word, the position the data pipelines weight in training)
as BIO tag lists (`word_tags`), the tags rewritten as decoded (`repair_bio`), and the scores
from per-type counts (`scores_from_counts`), which add exactly across batches and replicas (the
trainer's evaluation sums them; see `kerasllm.training.objectives.TokenClassification`).

Example:
>>> true = [["B-PER", "I-PER", "O", "B-LOC"]]
>>> pred = [["B-PER", "I-PER", "O", "B-ORG"]]
>>> report = entity_report(true, pred)
>>> report["precision"], report["recall"], report["per_type"]["PER"]["f1"]
(0.5, 0.5, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str]:
    """`(prefix, type)` of a BIO tag: "B-geo-loc" -> ("B", "geo-loc"), "O" -> ("O", "").

    Raises:
        ValueError: `tag` is neither "O" nor "B-TYPE" / "I-TYPE".

    Example:
    >>> split_tag("I-geo-loc")
    ('I', 'geo-loc')
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[:2] not in ("B-", "I-"):
        raise ValueError(f'Expected a BIO tag ("O", "B-TYPE" or "I-TYPE"); got {tag!r}.')
    return tag[0], tag[2:]


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one tag sequence as `(type, start, end)`, `end` exclusive, decoded by
    `seqeval` (default mode: an `I-` that follows `O` or another type opens an entity).

    Example:
    >>> entity_spans(["I-PER", "I-PER", "B-LOC", "I-ORG", "O"])
    [('PER', 0, 2), ('LOC', 2, 3), ('ORG', 3, 4)]
    """
    from seqeval.metrics.sequence_labeling import get_entities

    tags = list(tags)
    for tag in tags:
        split_tag(tag)  # clear error on a non-BIO tag (seqeval would read it silently)
    return [(kind, start, end + 1) for kind, start, end in get_entities(tags)]


def repair_bio(tags: Sequence[str]) -> list[str]:
    """`tags` rewritten as they are decoded: each entity `B-X I-X ...`, `O` elsewhere (an
    orphan `I-X` becomes `B-X`; `I-Y` after `X` starts a new `B-Y`).

    Example:
    >>> repair_bio(["O", "I-PER", "I-PER", "I-LOC"])
    ['O', 'B-PER', 'I-PER', 'B-LOC']
    """
    repaired = [OUTSIDE] * len(tags)
    for kind, start, end in entity_spans(tags):
        repaired[start] = "B-" + kind
        for i in range(start + 1, end):
            repaired[i] = "I-" + kind
    return repaired


def word_tags(
    predictions: Any, label_names: Sequence[str], word_counts: Sequence[int]
) -> list[list[str]]:
    """A `TokenClassifier`'s per-word predictions as BIO tag lists, one per text.

    Args:
        predictions: what `TokenClassifier.predict` returns on texts: per-word logits or
            probabilities (B, W, C) (each word's from its first sub-word), NaN for a word that is
            not classified (cut by the sequence length, or yielding no token); or class ids
            (B, W) (-1: not classified).
        label_names: the tag of each class id (a bundle's "label_names").
        word_counts: the number of words of each text (W may be larger: padding).

    Returns:
        One list of `word_counts[i]` tags per text; a word without a prediction gets "O" (it
        cannot be part of a predicted entity).

    Raises:
        ValueError: the shapes or the label names do not fit.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[[0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [np.nan] * 3]])
    >>> word_tags(logits, ["O", "B-PER", "I-PER"], [3])
    [['B-PER', 'I-PER', 'O']]
    """
    import numpy as np

    values = np.asarray(predictions)
    names = list(label_names)
    for name in names:
        split_tag(name)
    if values.ndim == 3:
        if values.shape[-1] != len(names):
            raise ValueError(
                f"`predictions` have {values.shape[-1]} classes but `label_names` names "
                f"{len(names)}."
            )
        missing = np.isnan(values).any(axis=-1)
        ids = np.where(missing, -1, np.argmax(np.nan_to_num(values, nan=-np.inf), axis=-1))
    elif values.ndim == 2:
        ids = values.astype(np.int64)
        if ids.size and ids.max() >= len(names):
            raise ValueError(
                f"`predictions` holds class id {int(ids.max())}; `label_names` has "
                f"{len(names)} names."
            )
    else:
        raise ValueError(
            f"`predictions` must be (texts, words, classes) or (texts, words); got shape "
            f"{values.shape}."
        )
    counts = list(word_counts)
    if len(counts) != ids.shape[0]:
        raise ValueError(f"`word_counts` has {len(counts)} rows; `predictions` {ids.shape[0]}.")
    tags = []
    for row, count in zip(ids, counts):
        row = [int(i) for i in row[:count]] + [-1] * max(0, count - len(row))
        tags.append([names[i] if i >= 0 else OUTSIDE for i in row])
    return tags


def _prf(correct: float, predicted: float, actual: float) -> tuple[float, float, float]:
    # zero_division=0, as `seqeval` with zero_division=0: no entity predicted -> precision 0.
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    total = precision + recall
    return precision, recall, (2 * precision * recall / total if total else 0.0)


def entity_counts(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict[str, dict[str, int]]:
    """Per type: `{"correct", "predicted", "true"}` entity counts over all sentences (what
    `scores_from_counts` turns into scores; counts of several batches add up).

    Example:
    >>> entity_counts([["B-A", "I-A"]], [["B-A", "B-A"]])
    {'A': {'correct': 0, 'predicted': 2, 'true': 1}}
    """
    _check_aligned(true_tags, predicted_tags)
    counts: dict[str, dict[str, int]] = {}
    for true, pred in zip(true_tags, predicted_tags):
        true_set = set(entity_spans(true))
        pred_set = set(entity_spans(pred))
        for key, entities in (("true", true_set), ("predicted", pred_set)):
            for kind, _, _ in entities:
                counts.setdefault(kind, {"correct": 0, "predicted": 0, "true": 0})[key] += 1
        for kind, _, _ in true_set & pred_set:
            counts[kind]["correct"] += 1
    return dict(sorted(counts.items()))


def scores_from_counts(counts: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Micro precision/recall/F1 and the per-type table from per-type counts
    (`{type: {"correct", "predicted", "true"}}`), as `seqeval` computes them.

    Returns:
        `{"precision", "recall", "f1", "true_entities", "predicted_entities", "per_type":
        {type: {"precision", "recall", "f1", "support"}}}` (support: true entities of the type).

    Example:
    >>> scores_from_counts({"A": {"correct": 1, "predicted": 2, "true": 1}})["f1"]
    0.6666666666666666
    """
    per_type = {}
    totals = {"correct": 0.0, "predicted": 0.0, "true": 0.0}
    for kind in sorted(counts):
        c = counts[kind]
        for key in totals:
            value = float(c[key])
            if value < 0 or math.isnan(value):
                raise ValueError(f"`counts[{kind!r}][{key!r}]` must be >= 0; got {c[key]!r}.")
            totals[key] += value
        precision, recall, f1 = _prf(float(c["correct"]), float(c["predicted"]), float(c["true"]))
        per_type[kind] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(c["true"]),
        }
    precision, recall, f1 = _prf(totals["correct"], totals["predicted"], totals["true"])
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_entities": int(totals["true"]),
        "predicted_entities": int(totals["predicted"]),
        "per_type": per_type,
    }


def entity_report(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Entity-level micro precision/recall/F1 and per-type scores, computed by `seqeval`
    (`precision_recall_fscore_support`, default mode, `zero_division=0`).

    Args:
        true_tags, predicted_tags: one BIO tag list per sentence, aligned word by word.

    Returns:
        As `scores_from_counts` (the same figures; a test holds the two equal).

    Raises:
        ValueError: different numbers of sentences or words, or a tag that is not BIO.
    """
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    _check_aligned(true_tags, predicted_tags)
    true = [list(row) for row in true_tags]
    pred = [list(row) for row in predicted_tags]
    counts = entity_counts(true, pred)
    result = scores_from_counts(counts)
    if not counts:
        return result
    micro = precision_recall_fscore_support(true, pred, average="micro", zero_division=0)
    per_type = precision_recall_fscore_support(true, pred, average=None, zero_division=0)
    result.update(precision=float(micro[0]), recall=float(micro[1]), f1=float(micro[2]))
    # seqeval orders the types as sorted(true types | predicted types), as `counts` is.
    for kind, p, r, f, support in zip(sorted(counts), *per_type):
        result["per_type"][kind] = {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(support),
        }
    return result


def _check_aligned(true_tags, predicted_tags) -> None:
    if len(true_tags) != len(predicted_tags):
        raise ValueError(
            f"`true_tags` has {len(true_tags)} sentences, `predicted_tags` {len(predicted_tags)}."
        )
    for i, (true, pred) in enumerate(zip(true_tags, predicted_tags)):
        if len(true) != len(pred):
            raise ValueError(
                f"Sentence {i}: {len(true)} true tags but {len(pred)} predicted tags (one per "
                "word each)."
            )
