"""Task metrics computed on Python outputs (text, labels, spans), one module per family:

- `generation`: corpus BLEU and chrF (sacrebleu) for any text-to-text output.
- `rouge`: ROUGE-1/2/L (Google's rouge-score, stemmed F-measures) for summaries, and the
  lead-N baseline.
- `squad`: SQuAD exact match and F1 (official answer normalization) for extractive QA.
- `entities`: entity-level NER precision/recall/F1 with a per-type report (seqeval), and
  a tagger's per-word predictions as BIO tags.

Every function takes plain Python sequences and returns plain floats/dicts, so the same code
scores a `predict`/`generate` call, a `kerasllm evaluate` run and an example script.

>>> from kerasllm import metrics
>>> metrics.score(["Le chat dort."], ["Le chat dort."])["bleu"]
100.0
"""

from kerasllm.metrics.entities import (
    entity_counts,
    entity_report,
    entity_spans,
    repair_bio,
    scores_from_counts,
    word_tags,
)
from kerasllm.metrics.generation import bleu, chrf, score
from kerasllm.metrics.rouge import best_lead_n, lead, rouge
from kerasllm.metrics.squad import exact_match, normalize_answer, squad

__all__ = [
    "best_lead_n",
    "bleu",
    "chrf",
    "entity_counts",
    "entity_report",
    "entity_spans",
    "exact_match",
    "lead",
    "normalize_answer",
    "repair_bio",
    "rouge",
    "score",
    "scores_from_counts",
    "squad",
    "word_tags",
]
