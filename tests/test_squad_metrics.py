"""SQuAD exact match and F1 against values worked out by hand from the official v1.1 script's
rules (lower case, no punctuation, no articles, whitespace collapsed; best gold answer)."""

import pytest

from kerasllm import metrics
from kerasllm.metrics.squad import exact_match, f1, normalize_answer


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   apple, a pear ", "apple pear"),
        ("Theater", "theater"),  # "the" only as a whole word
        ("U.S.A.", "usa"),
        ("Zoë's café", "zoës café"),
        ("", ""),
    ],
)
def test_normalize_answer_follows_the_official_script(text, normalized):
    assert normalize_answer(text) == normalized


def test_scores_take_the_best_gold_answer():
    assert exact_match("the Tower", ["Eiffel Tower", "tower"]) == 1.0
    assert exact_match("Tower", ["Eiffel Tower"]) == 0.0
    # "Eiffel" vs "the Eiffel Tower": precision 1, recall 1/2 -> F1 2/3.
    assert f1("Eiffel", ["the Eiffel Tower"]) == pytest.approx(2 / 3)
    assert f1("Eiffel", ["the Eiffel Tower", "Eiffel"]) == 1.0
    assert f1("", ["Paris"]) == 0.0
    # Repeated tokens count as often as both sides hold them.
    assert f1("paris paris", ["paris"]) == pytest.approx(2 / 3)


def test_squad_averages_in_percent():
    scores = metrics.squad(["Paris", "a cat", "no"], [["Paris"], "the cat sat", ["yes"]])
    assert scores["count"] == 3
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 * 0.5 * 1 / 1.5 + 0) / 3)
    assert metrics.squad([], []) == {"exact_match": 0.0, "f1": 0.0, "count": 0}


def test_squad_rejects_mismatched_or_missing_answers():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        metrics.squad(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match=r"answers\[0\]"):
        metrics.squad(["a"], [[]])
    with pytest.raises(TypeError, match="predictions"):
        metrics.squad("a", ["a"])
