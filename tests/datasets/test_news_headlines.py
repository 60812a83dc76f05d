"""`kerasllm.datasets.news_headlines`: (body, title) pairs on the news split by article."""

import kerasllm.datasets as kds
from kerasllm.training import inputs


def test_headlines_follow_the_news_split_by_article():
    sizes = {}
    for split in ("train", "validation", "test"):
        texts, titles = kds.news_headlines(split)
        sizes[split] = len(texts)
        assert len(titles) == len(texts)
        assert all(t and h and h == h.strip() for t, h in zip(texts, titles))
        # Every body is one of news_corpus's articles of the same split.
        assert set(texts) <= set(kds.news_corpus(split))
        assert all(kds.news_split_of_text(t) == split for t in texts)
    assert sizes == {"train": 3347, "validation": 172, "test": 198}
    texts, titles = kds.news_headlines("all")
    assert len(texts) == sum(sizes.values())
    assert titles[0].startswith("Betsy DeVos Confirmed as Education Secretary")
    assert not any('"?' in title for title in titles)  # cleaned as the bodies are


def test_headlines_are_a_built_in_seq2seq_corpus():
    corpus = inputs.load_corpus("seq2seq", "news_headlines", eval_split="test")
    assert corpus.sizes() == (3347, 198) and len(corpus.test) == 198
    source, target = corpus.train[0]
    assert len(source) > len(target) > 0
    assert "span_corruption" in inputs.BUILT_IN["news"]
