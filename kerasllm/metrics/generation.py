"""Corpus-level text generation metrics: sacrebleu's BLEU and chrF.

Generic over any text-to-text task (translation, summarization, ...): hypotheses are compared
with one reference each, with sacrebleu's defaults (BLEU: cased, 13a tokenization, exponential
smoothing; chrF: character 6-grams), so figures are comparable with published sacrebleu scores.
The signature strings name those settings and the sacrebleu version.

Example:

>>> from kerasllm import metrics
>>> metrics.score(["Le chat dort."], ["Le chat dort."])["bleu"]
100.0
>>> metrics.chrf(["Le chien dort."], ["Le chat dort."]) < 100
True
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    """Both as lists of str, of the same length; a clear error otherwise (sacrebleu raises an
    obscure one, or silently scores a str as its characters)."""
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(f"`{name}` must be a list of str; got {type(texts).__name__}.")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"`{name}[{i}]` must be a str; got {type(text).__name__}.")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} references; they must match."
        )
    return list(hypotheses), list(references)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100, rounded to 2 decimals) of `hypotheses` against `references`."""
    return score(hypotheses, references)["bleu"]


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100, rounded to 2 decimals) of `hypotheses` against `references`."""
    return score(hypotheses, references)["chrf"]


def score(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU (cased, 13a tokenization, sacrebleu's defaults) and chrF.

    Args:
        hypotheses: the system's outputs, one str per example.
        references: one reference str per example, aligned with `hypotheses`.

    Returns:
        `{"bleu", "chrf", "bleu_signature", "chrf_signature"}`: the scores rounded to 2
        decimals and sacrebleu's signatures of the settings.

    Raises:
        TypeError: either argument is not a list of str.
        ValueError: their lengths differ.
    """
    hypotheses, references = _check(hypotheses, references)
    bleu_metric = sacrebleu.metrics.BLEU()
    chrf_metric = sacrebleu.metrics.CHRF()
    bleu_score = bleu_metric.corpus_score(hypotheses, [references])
    chrf_score = chrf_metric.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_signature": str(bleu_metric.get_signature()),
        "chrf_signature": str(chrf_metric.get_signature()),
    }
