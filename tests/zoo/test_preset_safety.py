"""Preset files are data: they run no code, shadow no built-in, read no file outside their dir."""

import json
import sys
import tempfile

import pytest

from kerasllm import zoo
from kerasllm.tokenizers import WordPieceTokenizer
from kerasllm.zoo import registry

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch):
    """Presets and loaders registered by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setattr(registry, "_BUILT_IN", set(registry._BUILT_IN))


def _write_preset(path, **fields):
    data = {"name": "test_file_preset", "family": "encoder", **fields}
    data.setdefault("config", {**zoo.get_preset("bert_tiny").config, "num_layers": 1})
    path.write_text(json.dumps(data))
    return path


# Loaders: registered names only.


@pytest.fixture
def trap_module(tmp_path, monkeypatch):
    """An importable module that leaves a marker file when it is imported (it must not be)."""
    marker = tmp_path / "imported"
    (tmp_path / "kerasllm_trap_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef run(*args):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("kerasllm_trap_module", None)


def test_preset_file_naming_an_import_path_is_refused_and_nothing_runs(
    tmp_path, monkeypatch, trap_module
):
    called = []
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: called.append(a) or "/tmp/x")
    tokenizer_path = _write_preset(
        tmp_path / "tok.json", tokenizer={"kind": "wordpiece", "loader": "tempfile:mkdtemp"}
    )
    weights_path = _write_preset(tmp_path / "w.json", weights_loader="kerasllm_trap_module:run")
    for path in (tokenizer_path, weights_path):
        for call in (zoo.load_preset_file, zoo.get, zoo.get_tokenizer):
            with pytest.raises(ValueError, match="is an import path.*never imports"):
                call(str(path))
    assert called == []  # tempfile.mkdtemp never ran
    assert "kerasllm_trap_module" not in sys.modules and not trap_module.exists()
    assert "test_file_preset" not in registry._REGISTRY


def test_code_cannot_register_an_import_path_either():
    config = zoo.get_preset("bert_tiny").config
    with pytest.raises(ValueError, match="'tempfile:mkdtemp' is an import path"):
        zoo.register("test_bad", "encoder", config, weights_loader="tempfile:mkdtemp")


def test_unknown_loader_names_it_and_lists_the_known_ones(tmp_path):
    path = _write_preset(tmp_path / "p.json", weights_loader="minilm_l6_weigths")
    with pytest.raises(ValueError, match=r"Unknown weights_loader .*'minilm_l6_weigths'") as info:
        zoo.get(str(path))
    assert "Did you mean 'minilm_l6_weights'" in str(info.value)
    assert "'minilm_l6_tokenizer', 'minilm_l6_weights'" in str(info.value)
    with pytest.raises(ValueError, match="must be the name of a registered loader"):
        zoo.register(
            "test_bad", "encoder", zoo.get_preset("bert_tiny").config, weights_loader=["x"]
        )


def test_register_loader_checks_its_arguments():
    with pytest.raises(ValueError, match="without ':'"):
        zoo.register_loader("pkg.mod:fn", lambda: None)
    with pytest.raises(TypeError, match="must be callable"):
        zoo.register_loader("not_callable", 3)
    zoo.register_loader("test_loader", print)
    with pytest.raises(ValueError, match="'test_loader' already exists"):
        zoo.register_loader("test_loader", repr)


def test_built_in_presets_name_registered_loaders():
    preset = zoo.get_preset("minilm_l6")
    assert preset.weights_loader == "minilm_l6_weights"
    assert preset.tokenizer["loader"] == "minilm_l6_tokenizer"
    assert set(zoo.loaders()) >= {"minilm_l6_weights", "minilm_l6_tokenizer"}


# Shadowing built-in presets.


def test_a_preset_file_cannot_shadow_a_built_in(tmp_path):
    path = _write_preset(tmp_path / "bert_tiny.json", name="bert_tiny")
    for call in (zoo.get_preset, zoo.load_preset_file):
        with pytest.raises(ValueError, match="defines 'bert_tiny', the name of a built-in"):
            call(str(path))
    assert zoo.get_preset("bert_tiny").config["num_layers"] == 2  # the built-in is untouched
    with pytest.raises(ValueError, match=r"'bert_tiny' already exists \(a built-in preset\)"):
        zoo.register("bert_tiny", "encoder", zoo.get_preset("bert_tiny").config)
    # Asked explicitly, the file replaces it.
    assert zoo.load_preset_file(path, overwrite=True).config["num_layers"] == 1
    assert zoo.get_preset("bert_tiny").config["num_layers"] == 1


def test_a_preset_file_may_replace_a_user_preset(tmp_path):
    path = _write_preset(tmp_path / "p.json")
    assert zoo.get_preset(str(path)).config["num_layers"] == 1
    _write_preset(path, config={**zoo.get_preset("bert_tiny").config, "num_layers": 3})
    assert zoo.load_preset_file(path).config["num_layers"] == 3  # an edited file is re-read


# Files a preset file names stay inside its folder.


@pytest.fixture
def outside_tokenizer(tmp_path):
    WordPieceTokenizer(VOCAB).save(tmp_path / "outside_tok")
    (tmp_path / "presets").mkdir()
    return tmp_path / "outside_tok"


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_preset_file_tokenizer_path_is_confined(tmp_path, monkeypatch, outside_tokenizer, kind):
    folder = tmp_path / "presets"
    # The old code resolved relative names against models_dir(); point it at the preset folder
    # so that "../outside_tok" really reached the tokenizer there.
    monkeypatch.setenv("KERASLLM_MODELS_DIR", str(folder))
    name = {"parent": "../outside_tok", "absolute": str(outside_tokenizer), "symlink": "tok"}[kind]
    if kind == "symlink":
        (folder / "tok").symlink_to(outside_tokenizer, target_is_directory=True)
    path = _write_preset(folder / "p.json", tokenizer={"kind": "wordpiece", "path": name})
    with pytest.raises(ValueError, match=f"tokenizer folder '{name}'.*(outside|absolute)"):
        zoo.get_tokenizer(str(path))


def test_preset_file_weights_are_confined(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    path = _write_preset(folder / "p.json", weights="../../w.weights.h5")
    with pytest.raises(ValueError, match="weights file '../../w.weights.h5' resolves outside"):
        zoo.get(str(path))


def test_preset_file_names_files_beside_it_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASLLM_MODELS_DIR", str(tmp_path / "models"))
    folder = tmp_path / "search"
    WordPieceTokenizer(VOCAB).save(folder / "tokenizer")
    # A preset made in code may name an absolute path (only code can); saved beside that
    # folder it becomes a relative name, which the file resolves inside its own folder.
    preset = zoo.register(
        "test_code_preset",
        "encoder",
        zoo.get_preset("bert_tiny").config,
        tokenizer={"kind": "wordpiece", "path": str(folder / "tokenizer")},
    )
    path = zoo.save_preset_file(preset, folder / "preset.json")
    assert json.loads(path.read_text())["tokenizer"]["path"] == "tokenizer"
    assert zoo.get_tokenizer(str(path)).tokenize("film good").numpy().tolist() == [6, 5]
    # Saved anywhere else it would name a file outside its folder: refused when writing.
    with pytest.raises(ValueError, match="outside the preset file's folder"):
        zoo.save_preset_file(preset, tmp_path / "elsewhere" / "preset.json")


# Arguments.


@pytest.mark.parametrize("bad", [None, 123, 1.5, ["bert_tiny"]])
def test_get_with_a_non_string_name_is_a_type_error(bad):
    for call in (zoo.get, zoo.get_preset, zoo.get_tokenizer, zoo.num_params):
        with pytest.raises(TypeError, match="`name` must be a preset name .* received"):
            call(bad)


def test_preset_file_with_unknown_keys_or_bad_json_names_the_file(tmp_path):
    path = _write_preset(tmp_path / "p.json", weights_loder="x")
    with pytest.raises(ValueError, match="unknown keys \\['weights_loder'\\]"):
        zoo.get(str(path))
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        zoo.get(str(broken))
