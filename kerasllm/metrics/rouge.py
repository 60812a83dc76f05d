"""ROUGE for summaries (Google's `rouge-score` package) and the lead-N baseline.

`rouge` reports ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0-100), each the mean over the
examples of the per-example F-measure against one reference, with the Porter stemmer as the
summarization papers commonly report them (`use_stemmer=True`; `rouge-score`'s tokenizer
lowercases and keeps only ASCII letters and digits, so it is meant for English). ROUGE-L is the
sentence-level longest common subsequence (`rougeL`, not the newline-split `rougeLsum`).
The mean is the point estimate `rouge-score`'s `BootstrapAggregator` reports as "mid", without
the resampling, so the figures are deterministic.

The lead baseline summarizes a text by its first N words (`lead`); `best_lead_n` chooses N on
validation data by ROUGE-L, to be scored once on the test data.

Example:

>>> from kerasllm import metrics
>>> metrics.rouge(["the cats sat"], ["the cat sat on the mat"])["rouge1"]
66.67
>>> metrics.lead("Stocks fell on Monday. Oil rose.", 3)
'Stocks fell on'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rouge_score import rouge_scorer

from kerasllm.metrics.generation import _check

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
    hypotheses: Sequence[str], references: Sequence[str], use_stemmer: bool = True
) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (0-100, rounded to 2 decimals) of `hypotheses` against
    one reference each.

    Args:
        hypotheses: the system's summaries, one str per example.
        references: one reference str per example, aligned with `hypotheses`.
        use_stemmer: Porter-stem words before matching (the usual setting, default).

    Returns:
        `{"rouge1", "rouge2", "rougeL", "rouge_signature"}`; the scores are 0.0 for no examples,
        and an empty hypothesis or reference scores 0 for its example.

    Raises:
        TypeError: either argument is not a list of str.
        ValueError: their lengths differ.
    """
    hypotheses, references = _check(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hypothesis, reference in zip(hypotheses, references):
        # rouge-score's argument order is (target, prediction).
        scores = scorer.score(reference, hypothesis)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    count = max(len(hypotheses), 1)
    result: dict = {name: round(100.0 * total / count, 2) for name, total in totals.items()}
    result["rouge_signature"] = (
        f"rouge-score|F-measure|mean over {len(hypotheses)} examples|"
        f"stemmer:{'porter' if use_stemmer else 'none'}"
    )
    return result


def lead(text: str, n: int) -> str:
    """The first `n` whitespace-separated words of `text`, joined by single spaces.

    Example:
    >>> lead("  a  b c ", 2)
    'a b'
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str; got {type(text).__name__}.")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"`n` must be an int >= 0; got {n!r}.")
    return " ".join(text.split()[:n])


def best_lead_n(
    texts: Sequence[str],
    references: Sequence[str],
    candidates: Iterable[int] = range(1, 41),
    metric: str = "rougeL",
) -> tuple[int, dict[int, float]]:
    """The N of the lead-N baseline with the best `metric` on (validation) `texts` and their
    reference summaries; ties go to the smallest N.

    Returns:
        `(best n, {n: score})`.

    Example:
    >>> best_lead_n(["a b c d", "e f g h"], ["a b", "e f"], candidates=[1, 2, 3])[0]
    2
    """
    texts, references = _check(texts, references)
    if metric not in ROUGE_TYPES:
        raise ValueError(f"`metric` must be one of {ROUGE_TYPES}; got {metric!r}.")
    candidates = list(candidates)
    if not candidates:
        raise ValueError("`candidates` is empty.")
    scores = {n: rouge([lead(t, n) for t in texts], references)[metric] for n in candidates}
    best = max(candidates, key=lambda n: (scores[n], -n))
    return best, scores
