import json

import numpy as np
import pytest

from kerasllm import bundle, tokenizers, zoo
from kerasllm.testing import seq2seq_inputs


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizers.train_sentencepiece(
        ["the cat sat on the mat", "le chat est assis"] * 20, vocabulary_size=300
    )


def test_round_trip_keeps_outputs_tokenizer_and_metadata(tmp_path, tokenizer):
    model = zoo.get("transformer_tiny", task="seq2seq_lm", vocabulary_size=300, weights=None)
    inputs = seq2seq_inputs()
    path = bundle.Bundle(model, {"source": tokenizer, "target": tokenizer}, {"bleu": 1.5}).save(
        tmp_path / "b"
    )
    # Shared tokenizers are written once.
    roles = json.loads((path / "bundle.json").read_text())["tokenizers"]
    assert roles["source"] == roles["target"]
    restored = bundle.load(path)
    np.testing.assert_allclose(restored.model(inputs), model(inputs), atol=1e-6)
    assert restored.tokenizers["source"] is restored.tokenizers["target"]
    ids = tokenizer.tokenize(["the cat"]).to_list()
    assert restored.tokenizers["target"].tokenize(["the cat"]).to_list() == ids
    assert restored.metadata == {"bleu": 1.5}


def test_save_replaces_and_keeps_hand_written_files(tmp_path, tokenizer):
    model = zoo.get("transformer_tiny", task="seq2seq_lm", vocabulary_size=300, weights=None)
    target = tmp_path / "b"
    bundle.Bundle(model, {"source": tokenizer}).save(target)
    (target / "MODEL_CARD.md").write_text("card")
    bundle.Bundle(model, {"source": tokenizer}, {"v": 2}).save(target)
    assert (target / "MODEL_CARD.md").read_text() == "card"
    assert bundle.load(target).metadata == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging leftovers


def test_not_a_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a kerasllm model bundle"):
        bundle.load(tmp_path)
