"""Model bundles: a task model, its tokenizers and its metadata in one directory.

A bundle is what the project ships (`saved_models/translate_en_fr/`), what `kerasllm export`
turns into a SavedModel, and what the examples load:

```
BUNDLE/
  bundle.json          # format, the model's Keras config, tokenizer roles, metadata
  model.weights.h5     # the weights
  tokenizers/ROLE/     # one saved tokenizer per role ("source", "target", or "text")
```

Roles that share one tokenizer object are saved once and point at the same folder.

Every tokenizer must have the model's vocabulary size (`Bundle(...)`, `save` and `load`
refuse a mismatch), and every folder or file a bundle names must lie inside the bundle
folder, after symbolic links are resolved (`load` refuses `../x`, absolute paths and links
that lead out).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras

# The model classes `bundle.json` names must be registered with Keras before `load`
# deserializes them; importing only this module used to fail with "Could not locate class".
import kerasllm.models  # noqa: F401
from kerasllm import preprocessors
from kerasllm import tokenizers as tokenizers_lib
from kerasllm.tokenizers.base import check_vocabulary_match
from kerasllm.utils.files import read_json, resolve_inside, write_json

logger = logging.getLogger(__name__)

FORMAT = "kerasllm.bundle/1"
CONFIG_FILENAME = "bundle.json"
WEIGHTS_FILENAME = "model.weights.h5"


@dataclasses.dataclass
class Bundle:
    """A task model with its tokenizers (by role) and free-form metadata.

    Attributes:
        model: a kerasllm task model (e.g. `Seq2SeqLM`, `CausalLM`, `SequenceClassifier`).
        tokenizers: `{role: Tokenizer}`; seq2seq models use "source" and "target", others
            "text".
        metadata: JSON-serializable facts about the model (training data, lengths, scores).

    Example:
    >>> import tempfile
    >>> from kerasllm import zoo, tokenizers
    >>> tok = tokenizers.train_sentencepiece(["a b c d"] * 20, vocabulary_size=270)
    >>> model = zoo.get("transformer_tiny", task="seq2seq_lm", vocabulary_size=tok.vocabulary_size,
    ...                 weights=None)
    >>> path = Bundle(model, {"source": tok, "target": tok}).save(tempfile.mkdtemp())
    >>> type(load(path).model).__name__
    'Seq2SeqLM'
    """

    model: keras.Model
    tokenizers: dict
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.tokenizers, dict):
            raise TypeError(
                "`tokenizers` must be a dict {role: Tokenizer}; got "
                f"{type(self.tokenizers).__name__}."
            )
        check_vocabulary_match(self.model, self.tokenizers, "Bundle")

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes the bundle; the folder is replaced atomically (written beside, then renamed).

        The model is stored as weights and an uncompiled config: a model compiled and trained
        with Keras' `fit` is saved without its optimizer and its compile settings (training
        state belongs in checkpoints), and loads uncompiled.

        Raises:
            ValueError: a tokenizer's vocabulary size differs from the model's (the
                tokenizers may have been replaced since the bundle was made).
        """
        check_vocabulary_match(self.model, self.tokenizers, "Bundle.save")
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self._write(staging, keep_from=directory)
            backup = directory.with_name(f".{directory.name}.old")
            if directory.exists():
                shutil.rmtree(backup, ignore_errors=True)
                directory.rename(backup)
            staging.rename(directory)
            shutil.rmtree(backup, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    def _write(self, folder: Path, keep_from: Path) -> None:
        # `folder` is a fresh staging folder that `save` renames into place once complete, so
        # the weights are never seen half-written; bundle.json goes through the shared
        # atomic writer all the same.
        folder.mkdir(parents=True, exist_ok=True)
        # A bundle holds the model, not a training run: a model compiled and trained with
        # Keras' `fit` carries its optimizer, whose slots (twice the weights for Adam) Keras'
        # `save_weights` would write too, and `load_weights` then warns it skips. Checkpoints
        # keep training state; the bundle leaves the optimizer out.
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            self.model.optimizer = None
        try:
            self.model.save_weights(folder / WEIGHTS_FILENAME)
        finally:
            if optimizer is not None:
                self.model.optimizer = optimizer
        roles = {}
        saved = {}  # id(tokenizer) -> relative folder, so shared tokenizers are saved once
        for role, tokenizer in self.tokenizers.items():
            if id(tokenizer) not in saved:
                relative = f"tokenizers/{role}"
                tokenizer.save(folder / relative)
                saved[id(tokenizer)] = relative
            roles[role] = saved[id(tokenizer)]
        config = {
            "format": FORMAT,
            "model": _model_config(self.model),
            "tokenizers": roles,
            "metadata": self.metadata,
        }
        write_json(folder / CONFIG_FILENAME, config, sort_keys=True, ensure_ascii=True)
        # Files a person wrote beside the model (model card, evaluation reports) are kept.
        # A symbolic link is kept as a link, never followed: re-saving a received bundle must
        # not copy the content of whatever file a link in it points at into the new bundle.
        if keep_from.is_dir():
            for path in keep_from.iterdir():
                if path.is_file() and not (folder / path.name).exists():
                    shutil.copy2(path, folder / path.name, follow_symlinks=False)


def _model_config(model: keras.Model) -> dict:
    """The serialized model a bundle stores: float32 (`float32_config`) and uncompiled (a
    model compiled for Keras' `fit` would otherwise come back compiled, its optimizer built,
    from `deserialize_keras_object`)."""
    return _without_training_state(keras.saving.serialize_keras_object(model))


def _without_training_state(config: dict) -> dict:
    # Bundles written before this was dropped may hold a compile config: ignored on load too.
    return float32_config({k: v for k, v in config.items() if k != "compile_config"})


#: Policies that only say how a model was trained: its variables are float32 either way.
MIXED_POLICIES = ("mixed_bfloat16", "mixed_float16")


def float32_config(config: object) -> object:
    """A serialized model config with every mixed-precision dtype policy made float32.

    Mixed precision is how a model was trained (`precision="auto"` picks it on bfloat16
    hardware), not part of the model: its variables are float32, so a bundle saves and loads
    it as a float32 model, whose outputs do not depend on the hardware it was trained on.
    Other policies (float32, bfloat16, quantized) are kept.

    >>> float32_config({"dtype": {"class_name": "DTypePolicy",
    ...                           "config": {"name": "mixed_bfloat16"}}})
    {'dtype': {'class_name': 'DTypePolicy', 'config': {'name': 'float32'}}}
    """
    if isinstance(config, list):
        return [float32_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if (
        config.get("class_name") == "DTypePolicy"
        and isinstance(config.get("config"), dict)
        and config["config"].get("name") in MIXED_POLICIES
    ):
        return {**config, "config": {**config["config"], "name": "float32"}}
    return {key: float32_config(value) for key, value in config.items()}


def is_bundle(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a saved bundle."""
    return (Path(directory) / CONFIG_FILENAME).is_file()


def load(directory: str | os.PathLike) -> Bundle:
    """Loads a bundle written by `Bundle.save`.

    The task model comes back with its preprocessor (`model.preprocessor`), built on the
    bundle's tokenizers ("text"; or "source" and "target" for a `Seq2SeqLM`), so it takes
    raw text at once: `load(path).model.generate("...")`, `.predict([...])`. A model saved
    with a preprocessor keeps that preprocessor's options (sequence lengths, ...).

    Raises:
        FileNotFoundError: the folder holds no bundle.
        ValueError: the bundle has an unknown format, a `bundle.json` that does not parse, a
            tokenizer folder or file outside the bundle folder, tokenizers whose vocabulary
            size differs from the model's, or weights that do not fit the model.
    """
    directory = Path(directory)
    config = read_config(directory)
    tokenizers = _load_tokenizers(directory, config)
    model = keras.saving.deserialize_keras_object(_without_training_state(config["model"]))
    # Before the weights: a mismatched bundle is refused without reading them.
    check_vocabulary_match(model, tokenizers, f"Bundle {os.fspath(directory)}")
    model.load_weights(resolve_inside(directory, WEIGHTS_FILENAME, "weights file"))
    if tokenizers:
        # A config holds no tokenizer: the bundle's tokenizers are the preprocessor's.
        try:
            lengths = _trained_lengths(config.get("metadata"), model)
            preprocessors.attach(model, tokenizers, **lengths)
        except ValueError as error:
            # A tokenizer that cannot frame text for this task (e.g. no end token for a causal
            # LM) still serves token ids: load the model, and say why it takes no text.
            logger.warning("Bundle %s: the model takes token ids only (%s)", directory, error)
    return Bundle(model, tokenizers, config.get("metadata", {}))


def _trained_lengths(metadata, model) -> dict:
    """The lengths the model was trained with (`recipe.run` records them in the metadata:
    `sequence_length`, or `source_length`/`target_length` for a seq2seq model), as the
    options of the preprocessor `load` builds for a model saved without one, so a bundle
    trained on 64 tokens gets a 64-token preprocessor, not the default length. Values that
    are not positive ints, or exceed the model's `max_sequence_length`, are ignored (the
    default length applies)."""
    if not isinstance(metadata, dict):
        return {}
    limit = getattr(getattr(model, "backbone", None), "max_sequence_length", None)

    def length(key: str) -> int | None:
        value = metadata.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return value if ok and (limit is None or value <= limit) else None

    source, target = length("source_length"), length("target_length")
    if source is not None:
        options = {"sequence_length": source}
        if target is not None and target >= 2:
            options["decoder_sequence_length"] = target
        return options
    single = length("sequence_length")
    return {} if single is None else {"sequence_length": single}


def load_metadata(directory: str | os.PathLike) -> dict:
    """A saved bundle's metadata, without building its model (same errors as `load`)."""
    return read_config(Path(directory)).get("metadata", {})


def load_tokenizers(directory: str | os.PathLike) -> dict:
    """A saved bundle's `{role: Tokenizer}`; roles that shared one tokenizer share it again."""
    directory = Path(directory)
    return _load_tokenizers(directory, read_config(directory))


def _load_tokenizers(directory: Path, config: dict) -> dict:
    roles = config.get("tokenizers")
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise ValueError(
            f"{directory / CONFIG_FILENAME}: `tokenizers` must map roles to tokenizer folders "
            f"inside the bundle; got {roles!r}."
        )
    loaded = {}
    tokenizers = {}
    for role, relative in roles.items():
        # Confined: "../x", absolute paths and symbolic links leading out are refused.
        folder = resolve_inside(directory, relative, f"tokenizer folder of role {role!r}")
        if folder not in loaded:
            loaded[folder] = tokenizers_lib.load(folder)
        tokenizers[role] = loaded[folder]
    return tokenizers


def read_config(directory: str | os.PathLike) -> dict:
    """A saved bundle's `bundle.json`, checked for its format, without building anything.

    `kerasllm.zoo` reads a bundle's model config and tokenizer roles through this to use the
    bundle as a preset directory.

    Raises:
        FileNotFoundError: the folder holds no bundle.
        ValueError: `bundle.json` does not parse, is no JSON object or has an unknown format.
    """
    directory = Path(directory)
    path = directory / CONFIG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a kerasllm model bundle (no {CONFIG_FILENAME} in it)."
        )
    config = read_json(resolve_inside(directory, CONFIG_FILENAME, "bundle config"), "Bundle config")
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(config).__name__}.")
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown bundle format {config.get('format')!r}; need {FORMAT}.")
    return config
