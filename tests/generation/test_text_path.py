"""One text path: `generate(model, text)`, `model.generate(text)` and the exported signature
tokenize (and frame) text the same way, invalid UTF-8 and over-long prompts included."""

import keras
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.export.serving import CausalLMServing
from kerasllm.generation import generate
from kerasllm.models import CausalLM, Decoder, EncoderDecoder, Seq2SeqLM
from kerasllm.preprocessors import CausalLMPreprocessor, Seq2SeqLMPreprocessor
from kerasllm.testing import tiny_config

CORPUS = ["the cat sat on the mat", "café déjà vu", "a dog ran in the park"] * 20
BAD = b"the caf\xc3 \xff cat"  # a cut 2-byte character and a byte that is never UTF-8
PROMPTS = [BAD, "the cat " * 40, "", "😀 déjà vu"]  # invalid, too long, empty, Unicode
NEW = 4


@pytest.fixture(scope="module")
def byte_bpe():
    return kt.train_byte_bpe(CORPUS, vocabulary_size=300)


def _config(tokenizer):
    return {
        **tiny_config("learned_postnorm", num_layers=1, max_sequence_length=24),
        "vocabulary_size": tokenizer.vocabulary_size,
    }


@pytest.fixture(scope="module")
def causal_lm(byte_bpe):
    keras.utils.set_random_seed(5)
    return CausalLM(Decoder(**_config(byte_bpe)))


def test_tokenizer_prompts_tokenize_invalid_utf8_as_the_preprocessors_do(causal_lm, byte_bpe):
    # Without a preprocessor, `model.tokenizer` tokenizes; invalid UTF-8 is U+FFFD first, as
    # in training, preprocessors and exports. It used to reach the byte-level tokenizer raw
    # (8 ids for BAD instead of 12), so the model continued another prompt.
    causal_lm.tokenizer = byte_bpe
    try:
        got = generate(causal_lm, [BAD], max_new_tokens=NEW, strip_prompt=True)
        want = generate(
            causal_lm, [BAD.decode("utf-8", "replace")], max_new_tokens=NEW, strip_prompt=True
        )
        assert got == want
        assert causal_lm.generate([BAD], max_new_tokens=NEW, strip_prompt=True) == want
    finally:
        causal_lm.tokenizer = None


def test_generate_on_text_goes_through_the_models_preprocessor(causal_lm, byte_bpe):
    causal_lm.preprocessor = CausalLMPreprocessor(byte_bpe, sequence_length=24)
    try:
        # The generic function used to need `model.tokenizer` ("String inputs need a
        # tokenizer") and refused the long prompt; now it is `model.generate`'s path...
        got = generate(causal_lm, PROMPTS, max_new_tokens=NEW, strip_prompt=True)
        assert got == causal_lm.generate(PROMPTS, max_new_tokens=NEW, strip_prompt=True)
        assert generate(causal_lm, PROMPTS[1], max_new_tokens=NEW) == causal_lm.generate(
            PROMPTS[1], max_new_tokens=NEW
        )
        # ...which is the exported signature's (prompts keep their last tokens).
        module = CausalLMServing(causal_lm, byte_bpe, max_length=NEW)
        served = module.signatures()["serving_default"](prompt=tf.constant(PROMPTS))
        assert got == [s.decode("utf-8") for s in served["completion"].numpy()]
        with pytest.raises(ValueError, match="`start_id` applies to Seq2SeqLM only"):
            generate(causal_lm, PROMPTS, max_new_tokens=NEW, start_id=2)
    finally:
        causal_lm.preprocessor = None


def test_seq2seq_generate_on_text_goes_through_the_models_preprocessor(byte_bpe):
    keras.utils.set_random_seed(6)
    model = Seq2SeqLM(EncoderDecoder(**_config(byte_bpe)))
    model.preprocessor = Seq2SeqLMPreprocessor(byte_bpe, sequence_length=12)
    # Sources longer than 12 tokens are cut (the function used to refuse them).
    got = generate(model, PROMPTS, max_new_tokens=NEW)
    assert got == model.generate(PROMPTS, max_new_tokens=NEW)
    assert got[2] == ""  # an empty source translates to nothing, as served
    with pytest.raises(ValueError, match="`strip_prompt` applies to CausalLM only"):
        generate(model, PROMPTS, max_new_tokens=NEW, strip_prompt=True)
