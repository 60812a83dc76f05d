"""`kerasllm.metrics.rouge`: ROUGE-1/2/L F-measures and the lead-N baseline."""

import pytest
from rouge_score import rouge_scorer

from kerasllm import metrics


def test_rouge_matches_hand_computed_f_measures():
    # Hypothesis "the cat sat" (3 words) against "the cat sat on the mat" (6 words): 3 unigrams,
    # 2 bigrams and an LCS of 3 in common.
    scores = metrics.rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(100 * 2 * 1.0 * 0.5 / 1.5, abs=0.01)
    assert scores["rouge2"] == pytest.approx(100 * 2 * 1.0 * 0.4 / 1.4, abs=0.01)
    assert scores["rougeL"] == scores["rouge1"]
    assert "stemmer:porter" in scores["rouge_signature"]


def test_rouge_is_the_mean_of_rouge_score_per_example_and_stems():
    hypotheses = ["Stocks fell sharply on Monday", "", "Rain is expected"]
    references = ["Stock prices fall on Monday", "Markets rally", "Heavy rain expected today"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per_example = [scorer.score(r, h) for h, r in zip(hypotheses, references)]
    scores = metrics.rouge(hypotheses, references)
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = 100 * sum(s[name].fmeasure for s in per_example) / 3
        assert scores[name] == round(expected, 2)
    # Stemming: "fell"/"fall" differ, "Stocks"/"Stock" match once stemmed.
    unstemmed = metrics.rouge(["Stocks"], ["Stock"], use_stemmer=False)
    assert metrics.rouge(["Stocks"], ["Stock"])["rouge1"] == 100.0 and unstemmed["rouge1"] == 0.0


def test_rouge_edge_cases_and_errors():
    assert metrics.rouge([], [])["rougeL"] == 0.0
    assert metrics.rouge([""], ["a title"])["rouge1"] == 0.0
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        metrics.rouge(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="hypotheses"):
        metrics.rouge("a title", ["a title"])


def test_lead_and_its_n_tuned_on_validation():
    assert metrics.lead(" One  two\tthree four ", 3) == "One two three"
    assert metrics.lead("short", 10) == "short" and metrics.lead("", 2) == ""
    texts = ["w1 w2 w3 w4 w5 w6 w7 w8", "v1 v2 v3 v4 v5 v6 v7 v8"]
    titles = ["w1 w2 w3 w4", "v1 v2 v3 v4"]
    best, scores = metrics.best_lead_n(texts, titles, candidates=range(1, 9))
    assert best == 4 and scores[4] == 100.0 and scores[3] < 100 and scores[5] < 100
    with pytest.raises(ValueError, match="n"):
        metrics.lead("a b", -1)
    with pytest.raises(ValueError, match="metric"):
        metrics.best_lead_n(texts, titles, metric="bleu")
