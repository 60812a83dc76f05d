"""`kerasllm.datasets.news_title_pairs`: (title, body) matching on the news split by article."""

from collections import Counter

import kerasllm.datasets as kds
from kerasllm.training import inputs


def test_each_title_meets_its_own_body_once_and_another_body_of_its_split_once():
    sizes = {}
    for split in ("train", "validation", "test"):
        (titles, bodies), labels = kds.news_title_pairs(split)
        texts, heads = kds.news_headlines(split)
        # Titles are unique in validation and test (a few repeat in train, e.g. column names).
        body_of = dict(zip(heads, texts, strict=True)) if split != "train" else None
        assert body_of is None or len(body_of) == len(heads)
        sizes[split] = len(labels)
        assert len(titles) == len(bodies) == len(labels)
        assert Counter(labels) == {0: len(texts), 1: len(texts)}
        # Every title and every body once per class: neither side alone tells the label.
        for side in (titles, bodies):
            for label in (0, 1):
                assert sorted(x for x, y in zip(side, labels) if y == label) == sorted(
                    heads if side is titles else texts
                )
        split_bodies = set(texts)
        for title, body, label in zip(titles, bodies, labels):
            assert body in split_bodies  # never a body of another split
            if body_of is not None:
                assert (body == body_of[title]) == (label == 0)
        # Shuffled: the classes are interleaved, not in blocks.
        assert 0.3 < sum(labels[: len(labels) // 2]) / (len(labels) // 2) < 0.7
    assert sizes == {"train": 6694, "validation": 344, "test": 396}
    assert kds.news_title_pairs("test") == kds.news_title_pairs("test")  # fixed seed


def test_title_pairs_are_a_built_in_pair_classification_corpus():
    corpus = inputs.load_corpus("classification", "news_title_pairs", eval_split="test")
    assert corpus.labels == list(kds.NEWS_TITLE_PAIR_LABELS) == ["match", "other"]
    assert corpus.sizes() == (6694, 396) and len(corpus.test[1]) == 396
    (titles, bodies), labels = corpus.train
    assert len(titles[0]) < len(bodies[0]) and labels[0] in (0, 1)
    # The tokenizer a run learns reads both sides.
    assert len(corpus.texts()) == 2 * 6694
