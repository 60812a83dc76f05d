"""The preset registry: named model configurations that `kerasllm.zoo.get` builds."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
from pathlib import Path

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
            trained tokenizer is shipped, "path" (a saved tokenizer folder, relative to
            `models_dir()` or absolute) or "loader" (a "module:function" reference returning the
            tokenizer). `get_tokenizer` loads it.
        weights: shipped weights file, relative to `models_dir()` or absolute, loaded by default.
        num_params: the backbone's parameter count when known (checked by the test suite for
            built-in presets); computed by building the model otherwise.
        weights_loader: instead of `weights`, a "module:function" reference to a function that
            loads the default weights into the built backbone (e.g. from a checkpoint that ships
            inside an installed package).
    """

    name: str
    family: str
    config: dict
    description: str = ""
    tokenizer: dict | None = None
    weights: str | None = None
    num_params: int | None = None
    weights_loader: str | None = None

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else models_dir() / path


_REGISTRY: dict[str, Preset] = {}


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

    Example:
    >>> from kerasllm import zoo
    >>> _ = zoo.register("my_tiny_gpt", "decoder", {**zoo.get_preset("gpt_tiny").config,
    ...                  "num_layers": 1}, description="one-layer GPT", overwrite=True)
    >>> "my_tiny_gpt" in [row["name"] for row in zoo.list()]
    True
    """
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; expected one of {sorted(FAMILIES)}.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"Preset {name!r} already exists; pass overwrite=True to replace it.")
    FAMILIES[family].check_keys(config)
    if weights and weights_loader:
        raise ValueError(f"Preset {name!r}: give `weights` or `weights_loader`, not both.")
    for reference in (weights_loader, (tokenizer or {}).get("loader")):
        if reference is not None:
            _check_reference(reference)
    preset = Preset(
        name, family, dict(config), description, tokenizer, weights, num_params, weights_loader
    )
    _REGISTRY[name] = preset
    return preset


def load_preset_file(path: str | os.PathLike, overwrite: bool = True) -> Preset:
    """Registers the preset stored in a JSON file (as written by `save_preset_file`)."""
    data = json.loads(Path(path).read_text())
    missing = {"name", "family", "config"} - set(data)
    if missing:
        raise ValueError(f"Preset file {path} lacks the keys {sorted(missing)}.")
    return register(**data, overwrite=overwrite)


def save_preset_file(preset: Preset, path: str | os.PathLike) -> Path:
    """Writes a preset as JSON; `kerasllm.zoo.get(path)` loads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(preset), indent=2, sort_keys=True) + "\n")
    return path


def get_preset(name: str) -> Preset:
    """The registered `Preset` called `name`, or the preset in the JSON file `name`."""
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
        resolve_reference(preset.weights_loader)(backbone)
    return model


def _check_reference(reference) -> None:
    module, _, attribute = str(reference).partition(":")
    if not module or not attribute:
        raise ValueError(
            f"Loader reference {reference!r} must have the form 'package.module:function'."
        )


def resolve_reference(reference: str):
    """The object a "package.module:function" reference names (imported on demand)."""
    _check_reference(reference)
    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot resolve loader {reference!r}: {error}") from None


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
        return resolve_reference(spec["loader"])()
    if spec.get("path"):
        from kerasllm import tokenizers

        return tokenizers.load(preset.resolve(spec["path"]))
    expected = f"a {spec.get('kind', 'matching')} tokenizer"
    if spec.get("vocabulary_size"):
        expected += f" of {spec['vocabulary_size']} tokens"
    raise ValueError(
        f"Preset {name!r} ships no trained tokenizer; it expects {expected}. Train one with "
        "kerasllm.tokenizers, or pick a preset that ships one."
    )


def _weights_path(preset: Preset, weights):
    if weights == "default":
        return preset.resolve(preset.weights) if preset.weights else None
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
