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
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from kerasllm import tokenizers as tokenizers_lib

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
    >>> model = zoo.get("transformer_tiny", task="seq2seq_lm", vocabulary_size=270, weights=None)
    >>> path = Bundle(model, {"source": tok, "target": tok}).save(tempfile.mkdtemp())
    >>> type(load(path).model).__name__
    'Seq2SeqLM'
    """

    model: keras.Model
    tokenizers: dict
    metadata: dict = dataclasses.field(default_factory=dict)

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes the bundle; the folder is replaced atomically (written beside, then renamed)."""
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
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(folder / WEIGHTS_FILENAME)
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
            "model": keras.saving.serialize_keras_object(self.model),
            "tokenizers": roles,
            "metadata": self.metadata,
        }
        (folder / CONFIG_FILENAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        # Files a person wrote beside the model (model card, evaluation reports) are kept.
        if keep_from.is_dir():
            for path in keep_from.iterdir():
                if path.is_file() and not (folder / path.name).exists():
                    shutil.copy2(path, folder / path.name)


def is_bundle(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a saved bundle."""
    return (Path(directory) / CONFIG_FILENAME).is_file()


def load(directory: str | os.PathLike, compile: bool = False) -> Bundle:
    """Loads a bundle written by `Bundle.save`.

    Raises:
        FileNotFoundError: the folder holds no bundle.
        ValueError: the bundle has an unknown format or does not fit its weights.
    """
    directory = Path(directory)
    config = _read_config(directory)
    model = keras.saving.deserialize_keras_object(config["model"])
    model.load_weights(directory / WEIGHTS_FILENAME)
    return Bundle(model, _load_tokenizers(directory, config), config.get("metadata", {}))


def load_metadata(directory: str | os.PathLike) -> dict:
    """A saved bundle's metadata, without building its model (same errors as `load`)."""
    return _read_config(Path(directory)).get("metadata", {})


def load_tokenizers(directory: str | os.PathLike) -> dict:
    """A saved bundle's `{role: Tokenizer}`; roles that shared one tokenizer share it again."""
    directory = Path(directory)
    return _load_tokenizers(directory, _read_config(directory))


def _load_tokenizers(directory: Path, config: dict) -> dict:
    loaded = {}
    tokenizers = {}
    for role, relative in config["tokenizers"].items():
        if relative not in loaded:
            loaded[relative] = tokenizers_lib.load(directory / relative)
        tokenizers[role] = loaded[relative]
    return tokenizers


def _read_config(directory: Path) -> dict:
    path = directory / CONFIG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a kerasllm model bundle (no {CONFIG_FILENAME} in it)."
        )
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown bundle format {config.get('format')!r}; need {FORMAT}.")
    return config
