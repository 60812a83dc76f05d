"""`bundle.load` builds the preprocessor of a model saved without one at the lengths the
bundle was trained with (its metadata), not at the default length."""

import pytest

from kerasllm import bundle, tokenizers
from kerasllm.models import Encoder, EncoderDecoder, Seq2SeqLM, TokenClassifier
from kerasllm.testing import tiny_config


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizers.train_wordpiece(["the cat sat on the mat", "a dog ran"] * 10, 60)


def _tagger(tokenizer):
    encoder = Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size))
    return TokenClassifier(encoder, num_classes=3)


def test_a_tagger_gets_the_trained_sequence_length(tmp_path, tokenizer):
    path = bundle.Bundle(_tagger(tokenizer), {"text": tokenizer}, {"sequence_length": 24}).save(
        tmp_path / "b"
    )
    loaded = bundle.load(path)
    # The default would be the backbone's 32 (tiny_config's max_sequence_length).
    assert loaded.model.preprocessor.sequence_length == 24
    x = loaded.model.preprocessor([" ".join(["cat"] * 40)])
    assert x["token_ids"].shape[-1] <= 24


@pytest.mark.parametrize(
    "metadata", [{}, {"sequence_length": "24"}, {"sequence_length": 0}, {"sequence_length": 33}]
)
def test_without_a_usable_length_the_default_applies(tmp_path, tokenizer, metadata):
    path = bundle.Bundle(_tagger(tokenizer), {"text": tokenizer}, metadata).save(tmp_path / "b")
    assert bundle.load(path).model.preprocessor.sequence_length == 32


def test_a_seq2seq_model_gets_its_source_and_target_lengths(tmp_path):
    tok = tokenizers.train_sentencepiece(["the cat sat on the mat", "a dog ran"] * 20, 300)
    config = tiny_config(vocabulary_size=tok.vocabulary_size)
    model = Seq2SeqLM(EncoderDecoder(**config))
    metadata = {"source_length": 20, "target_length": 12}
    path = bundle.Bundle(model, {"source": tok, "target": tok}, metadata).save(tmp_path / "b")
    preprocessor = bundle.load(path).model.preprocessor
    assert preprocessor.encoder_sequence_length == 20
    assert preprocessor.decoder_sequence_length == 12
