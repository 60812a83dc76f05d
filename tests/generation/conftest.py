"""Session-scoped models (compiled decoding loops are cached on the model, so the whole test
run compiles each shape bucket once) and a stand-in tokenizer.

Tests that set `model.tokenizer` on a shared model use `with_tokenizer`, which removes it again.
"""

import keras
import pytest
from generation_helpers import WORDS, WordTokenizer

from kerasllm.models import CausalLM, Decoder, EncoderDecoder, Seq2SeqLM
from kerasllm.testing import tiny_config


@pytest.fixture(scope="session")
def causal_lm():
    keras.utils.set_random_seed(1)
    return CausalLM(Decoder(**tiny_config("learned_postnorm")))


@pytest.fixture(scope="session")
def seq2seq_lm():
    keras.utils.set_random_seed(2)
    return Seq2SeqLM(EncoderDecoder(**tiny_config("relative_t5")))


@pytest.fixture
def word_tokenizer():
    return WordTokenizer(WORDS)


@pytest.fixture
def with_tokenizer(word_tokenizer):
    """Attaches the stand-in tokenizer to a model for one test."""
    attached = []

    def attach(model):
        model.tokenizer = word_tokenizer
        attached.append(model)
        return model

    yield attach
    for model in attached:
        model.tokenizer = None
