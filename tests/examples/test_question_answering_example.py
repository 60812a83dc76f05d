"""examples/question_answering.py: the baselines on real test questions, and the baselines'
rules on hand-made ones."""

import json

import question_answering as qa


def test_overlap_baseline_picks_the_sentence_sharing_most_words():
    context = "The cat sat. Mike Pence cast the vote on Tuesday. It rained."
    assert qa.overlap_baseline("Pence casts @placeholder", context) == (
        "Mike Pence cast the vote on Tuesday."
    )
    assert qa.overlap_baseline("anything", "") == ""


def test_frequency_baseline_skips_question_words_and_stopwords():
    context = "DeVos won. The vote on DeVos was close; the Senate held the vote."
    assert qa.frequency_baseline("@placeholder wins vote", context) == "DeVos"
    assert qa.frequency_baseline("question", "") == ""


def test_baselines_run_on_the_test_split(capsys):
    assert qa.main(["--baselines", "--max-eval-pairs", "40"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["eval_pairs"] == 40
    for name in ("overlap", "frequency"):
        assert result[name]["count"] == 40
        assert 0.0 <= result[name]["exact_match"] <= result[name]["f1"] <= 100.0
