"""docs/security.md's "no code runs from data" for model configs: `bundle.json` and `.keras`.

Keras 3 deserialization (safe mode) resolves classes only from Keras packages and registered
serializable objects; these tests pin that behaviour for kerasllm's loaders, so an upgrade
that changed it would fail here instead of silently importing a module a file names.
"""

from __future__ import annotations

import json
import sys
import zipfile

import keras
import pytest

from kerasllm import bundle, tokenizers, zoo

TRAP = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\nclass Trap: pass\n"


@pytest.fixture
def trap_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a marker file if anything imports it."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "kerasllm_trap.py").write_text(TRAP.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("kerasllm_trap", None)


def _small_bundle(tmp_path):
    tok = tokenizers.train_wordpiece(["good film", "bad film"] * 20, vocabulary_size=40)
    model = zoo.get(
        "bert_tiny",
        task="classifier",
        num_classes=2,
        vocabulary_size=tok.vocabulary_size,
        num_layers=1,
        weights=None,
    )
    return bundle.Bundle(model, {"text": tok}).save(tmp_path / "b")


def test_a_bundle_config_naming_a_module_does_not_import_it(tmp_path, trap_module):
    path = _small_bundle(tmp_path)
    config = json.loads((path / "bundle.json").read_text())
    config["model"]["module"] = "kerasllm_trap"
    config["model"]["class_name"] = "Trap"
    config["model"].pop("registered_name", None)
    (path / "bundle.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="Trap"):
        bundle.load(path)
    assert not trap_module.exists(), "bundle.load imported a module named in bundle.json"


def test_a_keras_file_with_a_lambda_or_foreign_module_is_refused(tmp_path, trap_module):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        keras.models.load_model(tmp_path / "lambda.keras")

    # The same archive whose config names the trap module instead of a Keras class.
    source = zipfile.ZipFile(tmp_path / "lambda.keras")
    config = json.loads(source.read("config.json"))
    config["module"], config["class_name"] = "kerasllm_trap", "Trap"
    config.pop("registered_name", None)
    with zipfile.ZipFile(tmp_path / "trap.keras", "w") as target:
        for item in source.namelist():
            data = json.dumps(config) if item == "config.json" else source.read(item)
            target.writestr(item, data)
    with pytest.raises(Exception, match="Trap"):
        keras.models.load_model(tmp_path / "trap.keras")
    assert not trap_module.exists(), "load_model imported a module named in config.json"
