"""Shared fixtures: small synthetic text samples (no data package needed) and small tokenizers
trained once per session. The same round trip on samples of the real corpora is in
tests/datasets/test_tokenizers_on_corpora.py."""

import pytest

import kerasllm.tokenizers as kt
from kerasllm.testing import synthetic_text_samples


@pytest.fixture(scope="session")
def corpus_samples():
    """Synthetic samples of each kind of text (the round-trip tests run on these)."""
    return synthetic_text_samples()


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
