"""The preset registry: named model configurations that `kerasllm.zoo.get` builds."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from kerasllm.models import (
    CausalLM,
    Decoder,
    Encoder,
    EncoderDecoder,
    MaskedLM,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)
from kerasllm.models.backbone import closest
from kerasllm.utils.files import read_json, resolve_inside, write_json

FAMILIES = {"encoder": Encoder, "decoder": Decoder, "encoder_decoder": EncoderDecoder}

# task name -> (task class, backbone families it accepts)
TASKS = {
    "masked_lm": (MaskedLM, ("encoder",)),
    "causal_lm": (CausalLM, ("decoder",)),
    "seq2seq_lm": (Seq2SeqLM, ("encoder_decoder",)),
    "classifier": (SequenceClassifier, ("encoder", "decoder")),
    "token_classifier": (TokenClassifier, ("encoder",)),
}


def models_dir() -> Path:
    """Where shipped weights live: `$KERASLLM_MODELS_DIR`, else the repository's `saved_models/`."""
    env = os.environ.get("KERASLLM_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "saved_models"


# Loader functions presets may name. A preset is data (it may come from a JSON file someone
# sent), so it names a loader registered here by code, never an import path: naming
# "module:function" in data used to import and call any function in the environment.
_LOADERS: dict[str, Callable[..., Any]] = {}


def register_loader(
    name: str, function: Callable[..., Any], overwrite: bool = False
) -> Callable[..., Any]:
    """Makes `function` available to presets under `name`.

    A preset's `weights_loader` names a function called with the built backbone (it loads the
    default weights into it); its tokenizer's `"loader"` names a function called with no
    arguments that returns the tokenizer. Presets refer to loaders only by these registered
    names, so a preset file cannot make kerasllm import or call anything else.

    Args:
        name: the name presets use, e.g. "minilm_l6_weights" (no ":"; that is an import path).
        function: the loader.
        overwrite: replace a loader already registered under `name`.

    Returns:
        `function`, so this can decorate a function definition.

    Example:
    >>> from kerasllm import zoo
    >>> _ = zoo.register_loader("my_weights", lambda backbone: None, overwrite=True)
    >>> "my_weights" in zoo.loaders()
    True
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(
            f"A loader name must be a non-empty string without ':' (it is a name, not an "
            f"import path). Received: {name!r}"
        )
    if not callable(function):
        raise TypeError(f"Loader {name!r} must be callable; received {type(function).__name__}.")
    if name in _LOADERS and not overwrite and _LOADERS[name] is not function:
        raise ValueError(f"Loader {name!r} already exists; pass overwrite=True to replace it.")
    _LOADERS[name] = function
    return function


def loaders() -> list[str]:
    """The names of the registered loaders (what a preset's loader fields may name)."""
    return sorted(_LOADERS)


def get_loader(name: str, what: str = "loader") -> Callable[..., Any]:
    """The loader function registered as `name` (see `register_loader`).

    Raises:
        ValueError: `name` is not a registered loader (the message lists those that are), or
            is a "module:function" import path, which is refused without importing anything.
    """
    if not isinstance(name, str):
        raise ValueError(
            f"The {what} must be the name of a registered loader (a string); received "
            f"{type(name).__name__} {name!r}. Registered loaders: {loaders()}."
        )
    if ":" in name:
        raise ValueError(
            f"Refused {what}: {name!r} is an import path ('module:function'); presets name "
            "registered loaders and kerasllm never imports code named in preset data. "
            "Register the function with "
            f"kerasllm.zoo.register_loader(name, function) and use that name. Registered "
            f"loaders: {loaders()}."
        )
    try:
        return _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown {what}: {name!r}.{closest(name, _LOADERS)} Registered loaders: "
            f"{loaders()} (add one with kerasllm.zoo.register_loader)."
        ) from None


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named backbone configuration.

    Attributes:
        name: the name `get` takes.
        family: "encoder", "decoder" or "encoder_decoder".
        config: backbone hyperparameters (see `kerasllm.models.Backbone`).
        description: one line for `kerasllm zoo list`.
        tokenizer: the tokenizer the preset expects: a dict with at least "kind"
            ("wordpiece", "sentencepiece", "byte_bpe") and "vocabulary_size", plus, when a
            trained tokenizer is shipped, "path" (a saved tokenizer folder; see `resolve`) or
            "loader" (the name of a loader registered with `register_loader`, called with no
            arguments). `get_tokenizer` loads it.
        weights: shipped weights file (see `resolve`), loaded by default.
        num_params: the backbone's parameter count when known (checked by the test suite for
            built-in presets); computed by building the model otherwise.
        weights_loader: instead of `weights`, the name of a loader registered with
            `register_loader`; `get` calls it with the built backbone to load the default
            weights (e.g. from a checkpoint that ships inside an installed package).
        source: the folder of the preset file this preset was read from (None for presets
            registered in code); the file names it holds resolve inside it.
    """

    name: str
    family: str
    config: dict
    description: str = ""
    tokenizer: dict | None = None
    weights: str | None = None
    num_params: int | None = None
    weights_loader: str | None = None
    source: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def resolve(self, relative: str, what: str = "file") -> Path:
        """Where a file this preset names (its `weights`, its tokenizer's `path`) lives.

        A preset read from a file names files relative to that file's folder, or failing that
        to `models_dir()`, and they must resolve inside it (symbolic links followed): a preset
        someone sent cannot make kerasllm read `/etc/passwd` or `../../secret`. A preset
        registered in code names files relative to `models_dir()` (confined the same way) or
        by an absolute path, which only code can give.

        Raises:
            ValueError: the name is absolute (in a preset file) or leaves its folder.
        """
        if self.source is None:
            if isinstance(relative, str) and os.path.isabs(relative):
                return Path(relative)
            return resolve_inside(models_dir(), relative, what)
        inside = resolve_inside(self.source, relative, what)
        if _exists(inside) or not models_dir().is_dir():
            return inside
        fallback = resolve_inside(models_dir(), relative, what)
        return fallback if _exists(fallback) else inside


def _exists(path: Path) -> bool:
    # A weights entry may also name a training checkpoint prefix (`ckpt-N` + `.index`).
    return path.exists() or Path(f"{path}.index").exists()


_REGISTRY: dict[str, Preset] = {}
# Names registered by kerasllm itself (`presets.py`, `pretrained.py`): a user preset takes one
# only when its caller passes `overwrite=True` (the name stays protected afterwards).
_BUILT_IN: set[str] = set()
_PRESET_KEYS = ("name", "family", "config", "description", "tokenizer", "weights", "num_params")


def _check_name(name: Any) -> str:
    """`name` as a string; a clear `TypeError` for anything else (None, numbers)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(
            "`name` must be a preset name (a string such as 'bert_tiny'; see zoo.list()) or "
            f"the path of a preset .json file; received {type(name).__name__} {name!r}."
        )
    return name


def _make_preset(
    name: str,
    family: str,
    config: dict,
    description: str = "",
    tokenizer: dict | None = None,
    weights: str | None = None,
    num_params: int | None = None,
    weights_loader: str | None = None,
    source: str | None = None,
) -> Preset:
    """Validates a preset's fields (nothing is built, imported or read) and makes the `Preset`."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"A preset's `name` must be a non-empty string; received {name!r}.")
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; expected one of {sorted(FAMILIES)}.")
    if not isinstance(config, dict):
        raise TypeError(f"Preset {name!r}: `config` must be a dict; received {config!r}.")
    FAMILIES[family].check_keys(config)
    if tokenizer is not None and not isinstance(tokenizer, dict):
        raise TypeError(f"Preset {name!r}: `tokenizer` must be a dict; received {tokenizer!r}.")
    tokenizer = tokenizer or {}
    for key, value in (("weights", weights), ("tokenizer path", tokenizer.get("path"))):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"Preset {name!r}: its {key} must be a string; received {value!r}.")
    if weights and weights_loader:
        raise ValueError(f"Preset {name!r}: give `weights` or `weights_loader`, not both.")
    # Named loaders must exist now, so a bad preset fails where it is registered.
    if weights_loader is not None:
        get_loader(weights_loader, f"weights_loader of preset {name!r}")
    if tokenizer.get("loader") is not None:
        get_loader(tokenizer["loader"], f"tokenizer loader of preset {name!r}")
    return Preset(
        name,
        family,
        dict(config),
        description,
        dict(tokenizer) or None,
        weights,
        num_params,
        weights_loader,
        source,
    )


def register(
    name: str,
    family: str,
    config: dict,
    description: str = "",
    tokenizer: dict | None = None,
    weights: str | None = None,
    num_params: int | None = None,
    overwrite: bool = False,
    weights_loader: str | None = None,
) -> Preset:
    """Adds a preset to the zoo; the config is validated by building nothing.

    Args:
        name, family, config, description, tokenizer, weights, num_params, weights_loader:
            the `Preset` fields. Loaders are names registered with `register_loader`.
        overwrite: replace a preset already registered under `name` (built-in ones included);
            without it an existing name is refused.

    Example:
    >>> from kerasllm import zoo
    >>> _ = zoo.register("my_tiny_gpt", "decoder", {**zoo.get_preset("gpt_tiny").config,
    ...                  "num_layers": 1}, description="one-layer GPT", overwrite=True)
    >>> "my_tiny_gpt" in [row["name"] for row in zoo.list()]
    True
    """
    preset = _make_preset(
        name, family, config, description, tokenizer, weights, num_params, weights_loader
    )
    if name in _REGISTRY and not overwrite:
        kind = " (a built-in preset)" if name in _BUILT_IN else ""
        raise ValueError(
            f"Preset {name!r} already exists{kind}; pass overwrite=True to replace it."
        )
    _REGISTRY[name] = preset
    return preset


def _register_built_in(name: str, *args: Any, **kwargs: Any) -> Preset:
    """`register` for kerasllm's own presets, which user presets may not silently replace."""
    preset = register(name, *args, **kwargs)
    _BUILT_IN.add(name)
    return preset


def read_preset_file(path: str | os.PathLike) -> Preset:
    """The preset stored in a JSON file, validated but not registered.

    The file's `weights` and tokenizer `path` resolve inside the file's folder (see
    `Preset.resolve`); its loaders must be registered names.

    Raises:
        ValueError: the file is not valid JSON, lacks or has unknown keys, or names an unknown
            loader or an import path.
    """
    path = Path(path)
    data = read_json(path, "Preset file")
    if not isinstance(data, dict):
        raise ValueError(f"Preset file {path} must hold a JSON object; it holds {data!r:.80}.")
    missing = {"name", "family", "config"} - set(data)
    if missing:
        raise ValueError(f"Preset file {path} lacks the keys {sorted(missing)}.")
    unknown = set(data) - {*_PRESET_KEYS, "weights_loader"}
    if unknown:
        raise ValueError(
            f"Preset file {path} has unknown keys {sorted(unknown)}; allowed: "
            f"{sorted({*_PRESET_KEYS, 'weights_loader'})}."
        )
    return _make_preset(**data, source=os.fspath(path.resolve().parent))


def load_preset_file(path: str | os.PathLike, overwrite: bool = False) -> Preset:
    """Registers the preset stored in a JSON file (as written by `save_preset_file`).

    Args:
        path: the preset file.
        overwrite: let the file replace a built-in preset of the same name. Without it a file
            named like a built-in (`"bert_base"`) is refused, so a downloaded preset cannot
            silently change what `zoo.get("bert_base")` builds for the rest of the process.
            A preset registered earlier by user code or another file is replaced (re-reading
            an edited file is the common case).

    Raises:
        ValueError: as `read_preset_file`, or the file would replace a built-in preset.
    """
    preset = read_preset_file(path)
    if preset.name in _BUILT_IN and not overwrite:
        raise ValueError(
            f"Preset file {os.fspath(path)} defines {preset.name!r}, the name of a built-in "
            "preset; a preset file may not replace a built-in one. Rename the preset in the "
            "file, or pass overwrite=True to load_preset_file to replace the built-in."
        )
    _REGISTRY[preset.name] = preset
    return preset


def save_preset_file(preset: Preset, path: str | os.PathLike) -> Path:
    """Writes a preset as JSON; `kerasllm.zoo.get(path)` loads it back.

    The files the preset names are written relative to the new file's folder (or to
    `models_dir()`), since a preset file may only name files inside those.

    Raises:
        ValueError: the preset names a file outside both folders (copy it beside the preset
            file first).
    """
    path = Path(path)
    data = {k: v for k, v in dataclasses.asdict(preset).items() if k != "source"}
    folder = path.resolve().parent
    if preset.weights:
        data["weights"] = _portable_name(preset, preset.weights, folder, "weights file")
    if preset.tokenizer and preset.tokenizer.get("path"):
        data["tokenizer"] = {
            **preset.tokenizer,
            "path": _portable_name(preset, preset.tokenizer["path"], folder, "tokenizer folder"),
        }
    return write_json(path, data, ensure_ascii=True, sort_keys=True)


def _portable_name(preset: Preset, name: str, folder: Path, what: str) -> str:
    """`name` (as `preset` resolves it) relative to `folder` or `models_dir()`."""
    target = preset.resolve(name, what).resolve()
    for root in (folder, models_dir().resolve()):
        if target == root or root in target.parents:
            return target.relative_to(root).as_posix()
    raise ValueError(
        f"Preset {preset.name!r} names the {what} {os.fspath(target)!r}, outside the preset "
        f"file's folder {os.fspath(folder)!r} and models_dir() {os.fspath(models_dir())!r}; a "
        "preset file may only name files inside those. Copy it there first."
    )


def get_preset(name: str | os.PathLike) -> Preset:
    """The registered `Preset` called `name`, or the preset in the JSON file `name`.

    A preset file is registered as by `load_preset_file` (so it may not replace a built-in).

    Raises:
        TypeError: `name` is not a string or path (e.g. None, 123).
        ValueError: no preset has that name and it is no preset file.
    """
    name = _check_name(name)
    if name not in _REGISTRY and name.endswith(".json") and Path(name).is_file():
        return load_preset_file(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown preset {name!r}.{closest(name, _REGISTRY)} "
            f"Available presets: {sorted(_REGISTRY)}."
        ) from None


def _task_keys(task_class) -> set[str]:
    params = inspect.signature(task_class.__init__).parameters
    return {p for p in params if p not in ("self", "backbone", "kwargs")}


def get(name: str, task: str | None = None, weights: str | None = "default", **overrides):
    """Builds a preset's backbone, or a task model on it.

    Args:
        name: a preset name (see `list()`) or the path of a preset JSON file.
        task: None for the bare backbone, or one of "masked_lm", "causal_lm", "seq2seq_lm",
            "classifier", "token_classifier".
        weights: "default" loads the preset's shipped weights when it has any (its weights file,
            or its `weights_loader` into the backbone); None builds randomly initialized
            weights; a path loads a `.weights.h5` or `.keras` file, or a `kerasllm.training`
            checkpoint (its model directory, newest checkpoint, or a `ckpt-N` prefix).
        **overrides: backbone hyperparameters to change (e.g. `num_layers=2`, `dropout=0.0`) and
            task arguments (e.g. `num_classes=2`). Everything is validated before any weight is
            built.

    Returns:
        A built `keras.Model`.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> type(model).__name__, model.backbone.num_layers
    ('SequenceClassifier', 1)
    """
    preset = get_preset(name)
    backbone_class = FAMILIES[preset.family]
    backbone_keys = set(backbone_class.config_keys()) | {"dtype"}
    task_kwargs = {}
    if task is not None:
        if task not in TASKS:
            raise ValueError(
                f"Unknown task {task!r}.{closest(task, TASKS)} Expected one of {sorted(TASKS)}."
            )
        task_class, families = TASKS[task]
        if preset.family not in families:
            raise ValueError(
                f"Task {task!r} needs a {' or '.join(families)} preset; {name!r} is a "
                f"{preset.family}."
            )
        task_keys = _task_keys(task_class)
        task_kwargs = {k: overrides.pop(k) for k in [*overrides] if k in task_keys}
    unknown = set(overrides) - backbone_keys
    if unknown:
        key = sorted(unknown)[0]
        allowed = backbone_keys | (task_keys if task else set())
        raise ValueError(
            f"Unknown override {key!r} for preset {name!r}.{closest(key, allowed)} "
            f"Allowed: {sorted(allowed)}."
        )
    config = {**preset.config, **overrides}
    backbone = backbone_class(**config, name=f"{preset.family}_backbone")
    model = backbone if task is None else TASKS[task][0](backbone, **task_kwargs)
    weights_path = _weights_path(preset, weights)
    if weights_path is not None:
        _load_weights(model, weights_path)
    elif weights == "default" and preset.weights_loader:
        get_loader(preset.weights_loader, f"weights_loader of preset {preset.name!r}")(backbone)
    return model


def get_tokenizer(name: str):
    """The trained tokenizer a preset ships (from its "loader" or saved "path").

    Args:
        name: a preset name or preset JSON file.

    Returns:
        A `kerasllm.tokenizers.Tokenizer`.

    Raises:
        ValueError: the preset ships no trained tokenizer (it only names the kind it expects).

    Example:
    >>> from kerasllm import zoo
    >>> zoo.get_tokenizer("minilm_l6").tokenize("Hello!").numpy().tolist()
    [7592, 999]
    """
    preset = get_preset(name)
    spec = preset.tokenizer or {}
    if spec.get("loader"):
        return get_loader(spec["loader"], f"tokenizer loader of preset {preset.name!r}")()
    if spec.get("path"):
        from kerasllm import tokenizers

        return tokenizers.load(preset.resolve(spec["path"], "tokenizer folder"))
    expected = f"a {spec.get('kind', 'matching')} tokenizer"
    if spec.get("vocabulary_size"):
        expected += f" of {spec['vocabulary_size']} tokens"
    raise ValueError(
        f"Preset {name!r} ships no trained tokenizer; it expects {expected}. Train one with "
        "kerasllm.tokenizers, or pick a preset that ships one."
    )


def _weights_path(preset: Preset, weights):
    if weights == "default":
        return preset.resolve(preset.weights, "weights file") if preset.weights else None
    return None if weights is None else Path(weights)


def _load_weights(model, path: Path):
    if path.is_dir() or Path(f"{path}.index").exists():  # a kerasllm training checkpoint
        from kerasllm.training.checkpointing import load_model_weights

        load_model_weights(model, path, require_all=True)
        return
    if not path.exists():
        raise FileNotFoundError(f"Weights file {path} does not exist.")
    if path.suffix == ".keras":
        source = keras.saving.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    else:
        model.load_weights(path)


def num_params(name: str) -> int:
    """The backbone parameter count of a preset (builds it when the count is not recorded)."""
    preset = get_preset(name)
    if preset.num_params is not None:
        return preset.num_params
    return get(name, weights=None).count_params()


def list() -> list[dict]:  # noqa: A001 - the zoo's public verb, as in the package docs
    """Every preset: `{"name", "family", "description", "num_params"}`, sorted by name."""
    return [
        {
            "name": preset.name,
            "family": preset.family,
            "description": preset.description,
            "num_params": num_params(preset.name),
        }
        for preset in sorted(_REGISTRY.values(), key=lambda p: p.name)
    ]
