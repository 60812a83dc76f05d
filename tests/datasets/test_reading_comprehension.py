"""The news cloze reading-comprehension set: deterministic, answers where they say they are,
split by article as `news_corpus` splits the articles."""

import pytest

from kerasllm.datasets import PLACEHOLDER, news_cloze, news_corpus
from kerasllm.datasets.reading_comprehension import (
    as_columns,
    cloze_candidates,
    cut_context,
    make_cloze,
)


def test_candidates_are_content_word_runs_found_in_the_context():
    context = "Betsy DeVos was confirmed as secretary of education after a vote."
    title = "Betsy DeVos Confirmed as Education Secretary"
    runs = cloze_candidates(title, context)
    words = title.split()
    found = [" ".join(words[a:b]) for a, b in runs]
    assert found[0] == "Betsy DeVos"  # the longest run first
    assert "DeVos" not in found and "as" not in found  # inside a chosen run; a stopword
    assert set(found) == {"Betsy DeVos", "Confirmed", "Education", "Secretary"}
    assert cloze_candidates("Nothing Here", context) == []


def test_make_cloze_lists_every_occurrence_as_gold():
    ex = make_cloze("Brexit Vote Delayed", "Brexit talks. After Brexit, brexit-free.", 0, 1)
    assert ex.question == f"{PLACEHOLDER} Vote Delayed"
    assert [a["answer_start"] for a in ex.answers] == [0, 20]  # not inside "brexit-free"
    with pytest.raises(ValueError, match="do not occur"):
        make_cloze("Brexit Vote", "No match here.", 1, 2)


def test_cut_context_ends_at_a_sentence():
    assert cut_context("One. Two three. Four.", 12) == "One."
    assert cut_context("no sentence end at all", 5) == "no se"
    assert cut_context("short", None) == "short"


@pytest.fixture(scope="module")
def splits():
    return {split: news_cloze(split) for split in ("train", "validation", "test")}


def test_the_set_is_split_by_article_like_the_news_corpus(splits):
    sizes = {split: len(examples) for split, examples in splits.items()}
    assert sizes == {"train": 6253, "validation": 323, "test": 369}
    test_texts = set(news_corpus("test"))
    for ex in splits["test"][:50]:
        assert any(text.startswith(ex.context[:200]) for text in test_texts)
    train_contexts = {ex.context for ex in splits["train"]}
    assert not train_contexts & {ex.context for ex in splits["test"]}


def test_every_answer_is_at_its_offset_and_blanked_in_the_question(splits):
    for ex in splits["validation"]:
        assert ex.question.count(PLACEHOLDER) == 1
        assert len(ex.context) <= 2000
        for answer in ex.answers:
            start = answer["answer_start"]
            assert ex.context[start : start + len(answer["text"])] == answer["text"]
    columns = as_columns(splits["validation"])
    assert len(columns["question"]) == len(columns["answers"]) == len(splits["validation"])
    assert news_cloze("validation") == splits["validation"]  # deterministic
