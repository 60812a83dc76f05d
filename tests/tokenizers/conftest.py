"""Shared fixtures: real-corpus samples and small tokenizers trained once per session."""

import pytest

import kerasllm.tokenizers as kt
from kerasllm import datasets


@pytest.fixture(scope="session")
def corpus_samples():
    """A sample of every real corpus (the round-trip tests run on these)."""
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


@pytest.fixture(scope="session")
def training_texts(corpus_samples):
    return [t for sample in corpus_samples.values() for t in sample]


@pytest.fixture(scope="session")
def tokenizers(training_texts):
    """One small trained tokenizer of each kind."""
    return {
        "wordpiece": kt.train_wordpiece(training_texts, 2000),
        "sentencepiece_unigram": kt.train_sentencepiece(training_texts, 1500),
        "sentencepiece_bpe": kt.train_sentencepiece(training_texts, 1500, model_type="bpe"),
        "byte_bpe": kt.train_byte_bpe(training_texts, 1000),
    }


KINDS = ["wordpiece", "sentencepiece_unigram", "sentencepiece_bpe", "byte_bpe"]
