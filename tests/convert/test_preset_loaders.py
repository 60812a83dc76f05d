"""The zoo's hooks for pretrained presets: `weights_loader` and shipped tokenizers."""

import json

import numpy as np
import pytest

from kerasllm import convert, zoo
from kerasllm.models import Encoder
from kerasllm.testing import tiny_config
from kerasllm.tokenizers import WordPieceTokenizer
from kerasllm.zoo import registry

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch):
    """Presets and loaders registered by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))


def _exported_tiny_checkpoint(folder):
    """A tiny BERT checkpoint folder, as `save_bert_checkpoint` writes it."""
    encoder = Encoder(**tiny_config(vocabulary_size=len(VOCAB)))
    convert.save_bert_checkpoint(encoder, folder, tokenizer=WordPieceTokenizer(VOCAB))
    return encoder


_CHECKPOINT = {}


def load_tiny_weights(backbone):
    """A `weights_loader` for the test preset below."""
    convert.load_bert_weights(backbone, convert.read_checkpoint_tensors(_CHECKPOINT["folder"]))


def load_tiny_tokenizer():
    return convert.load_bert_tokenizer(_CHECKPOINT["folder"])


def test_weights_loader_and_tokenizer_loader(tmp_path):
    source = _exported_tiny_checkpoint(tmp_path / "ckpt")
    _CHECKPOINT["folder"] = tmp_path / "ckpt"
    config = convert.encoder_config_from_hf(convert.read_hf_config(tmp_path / "ckpt"))
    zoo.register_loader("test_tiny_weights", load_tiny_weights)
    zoo.register_loader("test_tiny_tokenizer", load_tiny_tokenizer)
    preset = zoo.register(
        "test_tiny_pretrained",
        "encoder",
        config,
        tokenizer={"kind": "wordpiece", "loader": "test_tiny_tokenizer"},
        weights_loader="test_tiny_weights",
        overwrite=True,
    )
    model = zoo.get("test_tiny_pretrained", task="classifier", num_classes=2)
    for ours, theirs in zip(model.backbone.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    random = zoo.get("test_tiny_pretrained", weights=None)
    assert not np.array_equal(random.get_weights()[0], source.get_weights()[0])
    assert zoo.get_tokenizer("test_tiny_pretrained").tokenize("Good film").numpy().tolist() == [
        5,
        6,
    ]

    # Presets with loaders survive the JSON preset files (which hold the loaders' names).
    path = zoo.save_preset_file(preset, tmp_path / "preset.json")
    assert json.loads(path.read_text())["weights_loader"] == "test_tiny_weights"
    assert zoo.load_preset_file(path) == preset


def test_tokenizer_from_a_saved_folder(tmp_path):
    WordPieceTokenizer(VOCAB).save(tmp_path / "tok")
    zoo.register(
        "test_saved_tokenizer",
        "encoder",
        zoo.get_preset("bert_tiny").config,
        tokenizer={"kind": "wordpiece", "path": str(tmp_path / "tok")},
        overwrite=True,
    )
    assert zoo.get_tokenizer("test_saved_tokenizer").tokenize("film good").numpy().tolist() == [
        6,
        5,
    ]


def test_loader_names_are_checked():
    config = zoo.get_preset("bert_tiny").config
    with pytest.raises(ValueError, match="Unknown weights_loader of preset 'test_bad': 'no_such'"):
        zoo.register("test_bad", "encoder", config, weights_loader="no_such", overwrite=True)
    with pytest.raises(ValueError, match="'a:b' is an import path"):
        zoo.register("test_bad", "encoder", config, weights_loader="a:b", overwrite=True)
    with pytest.raises(ValueError, match="`weights` or `weights_loader`, not both"):
        zoo.register(
            "test_bad",
            "encoder",
            config,
            weights="w.h5",
            weights_loader="minilm_l6_weights",
            overwrite=True,
        )
