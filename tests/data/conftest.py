import pytest

import kerasllm.tokenizers as kt
from kerasllm import data


@pytest.fixture(scope="session")
def bible_validation():
    return data.parallel_corpus(split="validation")


@pytest.fixture(scope="session")
def sp_tokenizer(bible_validation):
    texts = [t for pair in bible_validation for t in pair]
    return kt.train_sentencepiece(texts, 800)


@pytest.fixture(scope="session")
def wp_tokenizer(bible_validation):
    return kt.train_wordpiece([s for s, _ in bible_validation], 800)


@pytest.fixture(scope="session")
def toy_wordpiece():
    vocab = ["[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]", "a", "b", "c", "play", "##ing", "x"]
    return kt.WordPieceTokenizer(vocab)
