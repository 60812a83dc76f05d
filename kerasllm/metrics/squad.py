"""SQuAD exact match and F1, with the answer normalization of the official v1.1 script.

`normalize_answer` lower-cases, removes punctuation (`string.punctuation`), the articles
"a", "an", "the" and extra whitespace, exactly as `evaluate-v1.1.py` does; `exact_match` and
`f1` compare a prediction with each gold answer and keep the best, and `squad` averages
them over a set (percentages, as the official script reports them).

Example:

>>> from kerasllm import metrics
>>> metrics.squad(["the Eiffel Tower", "Paris"], [["Eiffel Tower"], ["in Paris, France"]])
{'exact_match': 50.0, 'f1': 75.0, 'count': 2}
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official script).

    >>> normalize_answer("The  Cat's hat!")
    'cats hat'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    predicted = normalize_answer(prediction).split()
    reference = normalize_answer(gold).split()
    common = collections.Counter(predicted) & collections.Counter(reference)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(reference)
    return 2 * precision * recall / (precision + recall)


def _golds(answers: str | Sequence[str], where: str) -> list[str]:
    golds = [answers] if isinstance(answers, str) else list(answers)
    if not golds or not all(isinstance(a, str) for a in golds):
        raise ValueError(f"{where} must be a non-empty list of str answers; got {answers!r:.80}.")
    return golds


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer, else 0.0.

    >>> exact_match("the Beatles", ["Beatles"])
    1.0
    """
    golds = _golds(answers, "`answers`")
    return float(max(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1(prediction: str, answers: str | Sequence[str]) -> float:
    """Best token-overlap F1 (0..1) of the prediction against the gold answers.

    >>> round(f1("Paris France", ["Paris"]), 4)
    0.6667
    """
    golds = _golds(answers, "`answers`")
    return max(_token_f1(prediction, g) for g in golds)


def squad(predictions: Sequence[str], answers: Sequence[str | Sequence[str]]) -> dict:
    """Mean exact match and F1 in percent over a set, as `evaluate-v1.1.py` reports them.

    Args:
        predictions: one predicted answer text per question.
        answers: the gold answers per question (a str, or a list of acceptable answers).

    Returns:
        `{"exact_match", "f1", "count"}`; an empty set gives 0.0 for both scores.

    Raises:
        TypeError: `predictions` is not a list of str.
        ValueError: the lengths differ, or a question has no gold answer.
    """
    if isinstance(predictions, (str, bytes)) or not all(isinstance(p, str) for p in predictions):
        raise TypeError("`predictions` must be a list of str (one answer per question).")
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} questions' answers.")
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0, "count": 0}
    em = total_f1 = 0.0
    for i, (prediction, gold) in enumerate(zip(predictions, answers)):
        golds = _golds(gold, f"`answers[{i}]`")
        em += exact_match(prediction, golds)
        total_f1 += f1(prediction, golds)
    count = len(predictions)
    return {"exact_match": 100.0 * em / count, "f1": 100.0 * total_f1 / count, "count": count}
