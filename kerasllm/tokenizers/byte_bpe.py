"""GPT-2 style byte-level BPE tokenizer (keras_hub `BytePairTokenizer` ops)."""

from __future__ import annotations

import json
import os
from typing import Any

import keras_hub
import numpy as np
import tensorflow as tf

from kerasllm import _compat
from kerasllm._compat import bytes_to_unicode
from kerasllm.tokenizers.base import Tokenizer, read_lines, register_kind, unique_tokens
from kerasllm.utils.files import atomic_write_text, read_json

VOCAB_FILENAME = "vocab.json"
MERGES_FILENAME = "merges.txt"
DEFAULT_SPECIAL_TOKENS = {
    "pad": "<|pad|>",
    "start": "<|startoftext|>",
    "end": "<|endoftext|>",
    "mask": "<|mask|>",
}
#: The unicode character standing for the space byte in byte-level vocabularies.
SPACE_SYMBOL = bytes_to_unicode()[1][bytes_to_unicode()[0].index(b" ")]


@register_kind("byte_bpe")
class ByteBPETokenizer(Tokenizer):
    """GPT-2 style byte-level BPE tokenizer.

    Text is split with the GPT-2 pattern, each piece is mapped to its UTF-8 bytes and the
    learned merges are applied. Every byte has a token, so there is no unknown token and
    the round trip is lossless: `normalize(x) == x`. Special-token strings in the text are
    never split. The ops are keras_hub's `BytePairTokenizer` (TensorFlow path).

    Args:
        vocabulary: `{token: id}` dict or the path of a `vocab.json` file.
        merges: list of `"a b"` merge rules (in priority order) or a `merges.txt` path.
        special_tokens: `{role: token}`; defaults to `<|pad|>` (0), `<|startoftext|>`,
            `<|endoftext|>` and `<|mask|>`.
        add_prefix_space: prepend a space so the first word is tokenized like the others.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_byte_bpe(["low lower lowest"] * 20, vocabulary_size=270)
    >>> tok.detokenize(tok.tokenize("lowest  low!")).numpy().decode()
    'lowest  low!'
    """

    def __init__(
        self,
        vocabulary: dict[str, int] | str,
        merges: list[str] | str,
        special_tokens: dict[str, str] | None = None,
        add_prefix_space: bool = False,
        name: str | None = None,
    ):
        super().__init__(dict(special_tokens or DEFAULT_SPECIAL_TOKENS), name=name)
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_json(vocabulary, "Byte BPE vocabulary")
        if isinstance(merges, (str, os.PathLike)):
            merges = [line for line in read_lines(merges, "Byte BPE merges") if line.strip()]
        merges = [m for m in merges if not m.startswith("#version")]
        vocabulary = {str(k): int(v) for k, v in dict(vocabulary).items()}
        ids = sorted(vocabulary.values())
        if ids != list(range(len(ids))):
            raise ValueError("Byte BPE vocabulary ids must be exactly 0..len(vocabulary)-1.")
        self._vocab_dict = _compat.untracked(vocabulary)
        inverse = [""] * len(vocabulary)
        for token, i in vocabulary.items():
            inverse[i] = token
        self._vocabulary = _compat.untracked(inverse)
        self._merges = _compat.untracked(list(merges))
        self.add_prefix_space = bool(add_prefix_space)
        self._layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary,
            merges=self._merges,
            add_prefix_space=self.add_prefix_space,
            unsplittable_tokens=unique_tokens(dict(self._special_tokens)),
            dtype="int32",
            _allow_python_workflow=False,
        )
        # Track the layer's lookup tables explicitly so they are saved in a SavedModel.
        layer = self._layer
        self._tables = [
            layer.cache.id2value,
            layer.token_to_id_map,
            layer.id_to_token_map,
            layer.byte2unicode,
            layer.unicode2byte,
            layer.merge_ranks,
        ]
        self._post_init()

    def _tokenize_impl(self, strings):
        ids = self._layer.tokenize(strings)
        return tf.cast(ids, tf.int32).with_row_splits_dtype(tf.int64)

    def _detokenize_impl(self, ids):
        return self._layer.detokenize(ids)

    def _normalize_impl(self, strings):
        return tf.identity(strings)

    def get_vocabulary(self) -> list[str]:
        return self._vocabulary

    @property
    def merges(self) -> list[str]:
        """The merge rules, highest priority first."""
        return self._merges

    def _word_start_flags(self) -> np.ndarray:
        return np.array([t.startswith(SPACE_SYMBOL) for t in self._vocabulary])

    def _options(self) -> dict[str, Any]:
        return {"add_prefix_space": self.add_prefix_space}

    def _save_files(self, directory: str) -> dict[str, str]:
        vocabulary = json.dumps(self._vocab_dict, ensure_ascii=False)
        atomic_write_text(os.path.join(directory, VOCAB_FILENAME), vocabulary)
        merges = "#version: 0.2\n" + "".join(m + "\n" for m in self._merges)
        atomic_write_text(os.path.join(directory, MERGES_FILENAME), merges)
        return {"vocabulary": VOCAB_FILENAME, "merges": MERGES_FILENAME}

    @classmethod
    def _from_files(cls, directory: str, config: dict[str, Any]) -> ByteBPETokenizer:
        return cls(
            cls._config_file(directory, config, "vocabulary"),
            cls._config_file(directory, config, "merges"),
            special_tokens=config["special_tokens"],
            **config["options"],
        )
