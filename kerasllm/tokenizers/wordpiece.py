"""BERT-style WordPiece tokenizer (keras_hub / tensorflow-text FastWordpiece ops)."""

from __future__ import annotations

import os
from typing import Any

import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.tokenizers.word_piece_tokenizer import (
    get_special_tokens_pattern,
    pretokenize,
)

from kerasllm.tokenizers.base import Tokenizer, register_kind, unique_tokens

VOCAB_FILENAME = "vocab.txt"
DEFAULT_SPECIAL_TOKENS = {
    "pad": "[PAD]",
    "unk": "[UNK]",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "mask": "[MASK]",
}


@register_kind("wordpiece")
class WordPieceTokenizer(Tokenizer):
    """BERT-style WordPiece tokenizer.

    Text is (optionally) lowercased and accent-stripped, split on whitespace, punctuation
    and CJK characters (each CJK character is its own word), then each word is split into
    the longest vocabulary pieces (continuations carry the `##` prefix). The ops are
    keras_hub's `pretokenize` and tensorflow-text's `FastWordpieceTokenizer`.

    WordPiece has no dedicated start/end tokens: `start_id` is `[CLS]` and `end_id` is
    `[SEP]`, as in BERT. `detokenize` joins words with single spaces, so a round trip
    gives `normalize(x)`: the lowercased, accent-stripped words joined by spaces.

    Args:
        vocabulary: list of tokens (index = id) or the path of a `vocab.txt` file.
        lowercase: lowercase the input (special tokens keep their case).
        strip_accents: remove accents (NFD, then drop combining marks).
        split_on_cjk: split CJK characters into single-character words.
        suffix_indicator: the prefix that marks a word continuation.
        special_tokens: `{role: token}`; defaults to `[PAD] [UNK] [CLS] [SEP] [MASK]`.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "qu", "##ick", "."]
    >>> tok = kt.WordPieceTokenizer(vocab)
    >>> tok.tokenize("The quick.").numpy().tolist()
    [5, 6, 7, 8]
    >>> tok.detokenize([5, 6, 7, 8]).numpy().decode()
    'the quick .'
    """

    _ROLE_FALLBACK = {"start": "cls", "end": "sep"}

    def __init__(
        self,
        vocabulary: list[str] | str,
        lowercase: bool = True,
        strip_accents: bool = True,
        split_on_cjk: bool = True,
        suffix_indicator: str = "##",
        special_tokens: dict[str, str] | None = None,
        name: str | None = None,
    ):
        super().__init__(dict(special_tokens or DEFAULT_SPECIAL_TOKENS), name=name)
        if isinstance(vocabulary, (str, os.PathLike)):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("The WordPiece vocabulary contains duplicate tokens.")
        if "unk" not in dict(self._special_tokens):
            raise ValueError("A WordPiece tokenizer needs an 'unk' special token.")
        self._vocabulary = self._no_dependency(vocabulary)
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        specials = unique_tokens(dict(self._special_tokens))
        self._special_pattern = get_special_tokens_pattern(specials)
        self._layer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary,
            lowercase=self.lowercase,
            strip_accents=self.strip_accents,
            split=True,
            split_on_cjk=self.split_on_cjk,
            suffix_indicator=suffix_indicator,
            oov_token=dict(self._special_tokens)["unk"],
            special_tokens=specials,
            special_tokens_in_strings=True,
            dtype="int32",
            _allow_python_workflow=False,
        )
        self._post_init()

    def _tokenize_impl(self, strings):
        # Called inside a tf.function, so keras_hub always takes its TensorFlow path.
        ids = self._layer.tokenize(strings)
        return tf.cast(ids, tf.int32).with_row_splits_dtype(tf.int64)

    def _detokenize_impl(self, ids):
        return self._layer._fast_word_piece.detokenize(ids)

    def _normalize_impl(self, strings):
        words = pretokenize(
            strings,
            lowercase=self.lowercase,
            strip_accents=self.strip_accents,
            split=True,
            split_on_cjk=self.split_on_cjk,
            special_tokens_pattern=self._special_pattern,
        )
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def get_vocabulary(self) -> list[str]:
        return self._vocabulary

    def _word_start_flags(self) -> np.ndarray:
        return np.array([not t.startswith(self.suffix_indicator) for t in self._vocabulary])

    def _options(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "split_on_cjk": self.split_on_cjk,
            "suffix_indicator": self.suffix_indicator,
        }

    def _save_files(self, directory: str) -> dict[str, str]:
        with open(os.path.join(directory, VOCAB_FILENAME), "w", encoding="utf-8") as f:
            f.writelines(token + "\n" for token in self._vocabulary)
        return {"vocabulary": VOCAB_FILENAME}

    @classmethod
    def _from_files(cls, directory: str, config: dict[str, Any]) -> WordPieceTokenizer:
        return cls(
            os.path.join(directory, config["files"]["vocabulary"]),
            special_tokens=config["special_tokens"],
            **config["options"],
        )
