import json
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasllm import bundle, tokenizers, zoo
from kerasllm.testing import seq2seq_inputs
from kerasllm.tokenizers.base import check_vocabulary_match


def _seq2seq(tokenizer):
    """A tiny untrained translation model sized for `tokenizer`."""
    return zoo.get(
        "transformer_tiny",
        task="seq2seq_lm",
        vocabulary_size=tokenizer.vocabulary_size,
        weights=None,
    )


@pytest.fixture(scope="module")
def tokenizer():
    tok = tokenizers.train_sentencepiece(
        ["the cat sat on the mat", "le chat est assis"] * 20, vocabulary_size=300
    )
    # SentencePiece stops short of 300 on this corpus: models take the size it reached.
    assert tok.vocabulary_size < 300
    return tok


def test_round_trip_keeps_outputs_tokenizer_and_metadata(tmp_path, tokenizer):
    model = _seq2seq(tokenizer)
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


def test_a_model_trained_with_fit_is_bundled_without_its_optimizer(tmp_path, tokenizer):
    model = _seq2seq(tokenizer)
    inputs = seq2seq_inputs()
    plain = bundle.Bundle(model, {"source": tokenizer, "target": tokenizer}).save(tmp_path / "a")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    labels = np.roll(inputs["decoder_token_ids"], -1, axis=1)
    model.fit(inputs, labels, epochs=1, verbose=0)  # the optimizer's slots now exist
    assert model.optimizer.variables
    path = bundle.Bundle(model, {"source": tokenizer, "target": tokenizer}).save(tmp_path / "b")
    # Same file size as the uncompiled model's: no Adam moments (they would triple it).
    size, plain_size = (p / bundle.WEIGHTS_FILENAME for p in (path, plain))
    assert size.stat().st_size < 1.05 * plain_size.stat().st_size
    assert model.optimizer is not None  # the model keeps training
    assert "compile_config" not in json.loads((path / "bundle.json").read_text())["model"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Keras' "Skipping variable loading for optimizer"
        restored = bundle.load(path)
    assert getattr(restored.model, "optimizer", None) is None
    np.testing.assert_allclose(restored.model(inputs), model(inputs), atol=1e-5)


def test_save_replaces_and_keeps_hand_written_files(tmp_path, tokenizer):
    model = _seq2seq(tokenizer)
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


# ------------------------------------------------------------------ hardening (issue 23)
@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """A small saved seq2seq bundle (shared source/target tokenizer), written once."""
    model = _seq2seq(tokenizer)
    path = tmp_path_factory.mktemp("saved") / "b"
    return bundle.Bundle(model, {"source": tokenizer, "target": tokenizer}).save(path)


def _copy(saved, tmp_path):
    shutil.copytree(saved, tmp_path / "b")
    return tmp_path / "b"


@pytest.fixture(scope="module")
def other_tokenizer():
    """A tokenizer of another vocabulary size than `tokenizer`'s."""
    return tokenizers.train_wordpiece(["the cat sat on the mat"] * 10, vocabulary_size=40)


def test_bundle_refuses_a_tokenizer_of_another_vocabulary(tokenizer, other_tokenizer, tmp_path):
    model = _seq2seq(tokenizer)
    size = other_tokenizer.vocabulary_size
    with pytest.raises(
        ValueError,
        match=rf"Bundle: the model's vocabulary has {tokenizer.vocabulary_size} ids .* {size}",
    ):
        bundle.Bundle(model, {"source": tokenizer, "target": other_tokenizer})
    item = bundle.Bundle(model, {"source": tokenizer})
    item.tokenizers["target"] = other_tokenizer  # replaced after the bundle was made
    with pytest.raises(
        ValueError, match=rf"Bundle.save: .* {tokenizer.vocabulary_size} ids .* 'target' .* {size}"
    ):
        item.save(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_load_refuses_a_swapped_tokenizer(saved, tokenizer, other_tokenizer, tmp_path):
    path = _copy(saved, tmp_path)
    shutil.rmtree(path / "tokenizers" / "source")
    other_tokenizer.save(path / "tokenizers" / "source")
    size = other_tokenizer.vocabulary_size
    with pytest.raises(
        ValueError,
        match=rf"Bundle {path}: the model's vocabulary has {tokenizer.vocabulary_size}.*{size}",
    ):
        bundle.load(path)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_load_confines_tokenizer_folders(saved, tmp_path, how):
    # bundle.json naming "../evil_tok" (or an absolute path, or a link out of the bundle) used
    # to load whatever tokenizer lay there; `kerasllm export` then embedded its files.
    path = _copy(saved, tmp_path)
    evil = tmp_path / "evil_tok"
    shutil.copytree(path / "tokenizers" / "source", evil)  # a valid tokenizer, wrong place
    config = json.loads((path / "bundle.json").read_text())
    if how == "dotdot":
        name = "../evil_tok"
    elif how == "absolute":
        name = str(evil)
    else:
        name = "tokenizers/source"
        shutil.rmtree(path / name)
        (path / name).symlink_to(evil, target_is_directory=True)
    config["tokenizers"] = {"source": name, "target": name}
    (path / "bundle.json").write_text(json.dumps(config))
    for load in (bundle.load, bundle.load_tokenizers):
        with pytest.raises(ValueError) as info:
            load(path)
        assert repr(name) in str(info.value)
        assert ("is an absolute path" if how == "absolute" else "resolves outside") in str(
            info.value
        )


def test_load_refuses_weights_linked_from_outside(saved, tmp_path):
    path = _copy(saved, tmp_path)
    outside = tmp_path / "elsewhere.weights.h5"
    (path / "model.weights.h5").rename(outside)
    (path / "model.weights.h5").symlink_to(outside)
    with pytest.raises(ValueError, match="weights file 'model.weights.h5' resolves outside"):
        bundle.load(path)


def test_truncated_bundle_json_names_the_file(saved, tmp_path):
    path = _copy(saved, tmp_path)
    config = path / "bundle.json"
    config.write_text(config.read_text()[:200])
    for load in (bundle.load, bundle.load_metadata):
        with pytest.raises(ValueError, match=rf"{config} is not valid JSON"):
            load(path)
    config.write_text(json.dumps({"format": bundle.FORMAT, "model": {}, "tokenizers": ["x"]}))
    with pytest.raises(ValueError, match="`tokenizers` must map roles to tokenizer folders"):
        bundle.load_tokenizers(path)


def test_export_refuses_a_tokenizer_of_another_vocabulary(tokenizer, other_tokenizer):
    from kerasllm.export.serving import serving_module

    model = _seq2seq(tokenizer)
    size = other_tokenizer.vocabulary_size
    with pytest.raises(
        ValueError,
        match=rf"export: the model's vocabulary has {tokenizer.vocabulary_size} ids .* {size}",
    ):
        serving_module(model, {"source": other_tokenizer, "target": other_tokenizer})


def test_shipped_bundle_tokenizer_matches_its_model():
    # The equality rule holds for what the project ships (8,000 ids on both sides).
    shipped = Path(__file__).resolve().parents[1] / "saved_models" / "translate_en_fr"
    tokenizers_ = bundle.load_tokenizers(shipped)
    model_config = json.loads((shipped / "bundle.json").read_text())["model"]
    model = keras.saving.deserialize_keras_object(model_config)
    check_vocabulary_match(model, tokenizers_, "shipped bundle")
    assert tokenizers_["source"].vocabulary_size == 8000


def test_save_keeps_links_beside_the_model_as_links(saved, tokenizer, tmp_path):
    # A received bundle with a file linked to a secret outside it, saved again (fine-tuned in
    # place): the link used to be followed and the secret copied into the new bundle.
    path = _copy(saved, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (path / "NOTES.md").symlink_to(secret)
    bundle.Bundle(_seq2seq(tokenizer), {"source": tokenizer}).save(path)
    assert (path / "NOTES.md").is_symlink()
