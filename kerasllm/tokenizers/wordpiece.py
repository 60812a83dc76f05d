"""BERT-style WordPiece tokenizer (keras_hub / tensorflow-text FastWordpiece ops)."""

from __future__ import annotations

import os
import re
from typing import Any

import keras_hub
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kerasllm import _compat
from kerasllm.tokenizers.base import Tokenizer, read_lines, register_kind, unique_tokens
from kerasllm.utils.files import atomic_write_text

VOCAB_FILENAME = "vocab.txt"
DEFAULT_SPECIAL_TOKENS = {
    "pad": "[PAD]",
    "unk": "[UNK]",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "mask": "[MASK]",
}


def bert_normalize(
    strings: tf.Tensor,
    lowercase: bool = True,
    strip_accents: bool = True,
    special_tokens_pattern: str | None = None,
) -> tf.Tensor:
    """BERT's text clean-up, lowercasing and accent stripping, as TensorFlow ops.

    Mirrors the original BERT `BasicTokenizer` (and Hugging Face's `BertTokenizer`), which
    pretrained checkpoints expect: control and format characters (zero-width space, soft
    hyphen, ...) are deleted rather than treated as word breaks, text is lowercased with plain
    Unicode lowercasing (not NFKC case folding, which would turn "ß" into "ss" or recompose
    Hangul jamo) and then accents are stripped (NFD, drop combining marks). Matches of
    `special_tokens_pattern` are left untouched.

    Args:
        strings: a string tensor of any shape.
        lowercase: lowercase the text.
        strip_accents: decompose (NFD) and drop combining marks.
        special_tokens_pattern: a regex matching the special tokens to keep verbatim.

    Returns:
        A string tensor of the same shape.
    """
    strings = tf.strings.regex_replace(strings, r"[\t\n\r]", " ")
    strings = tf.strings.regex_replace(strings, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
    if not (lowercase or strip_accents):
        return strings

    def fold(text):
        if lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        if strip_accents:
            text = tf.strings.regex_replace(tf_text.normalize_utf8(text, "NFD"), r"\p{Mn}", "")
        return text

    if special_tokens_pattern is None:
        return fold(strings)
    # Fold the text between special tokens, then glue the pieces back together.
    shape = tf.shape(strings)
    pieces = tf_text.regex_split(
        tf.reshape(strings, [-1]), special_tokens_pattern, special_tokens_pattern
    )
    special = tf.strings.regex_full_match(pieces.flat_values, special_tokens_pattern)
    folded = pieces.with_flat_values(
        tf.where(special, pieces.flat_values, fold(pieces.flat_values))
    )
    return tf.reshape(tf.strings.reduce_join(folded, axis=-1), shape)


def pretokenize_words(
    strings: tf.Tensor,
    lowercase: bool = True,
    strip_accents: bool = True,
    split_on_cjk: bool = True,
    special_tokens_pattern: str | None = None,
) -> tf.RaggedTensor:
    """Splits text into the words WordPiece sees: `bert_normalize`, then keras_hub's split.

    Words break at whitespace and punctuation (kept as words) and around CJK characters.

    Returns:
        A ragged string tensor with one more dimension than `strings` (rank 0 counts as 1).
    """
    strings = bert_normalize(strings, lowercase, strip_accents, special_tokens_pattern)
    return _compat.wordpiece_pretokenize(
        strings,
        lowercase=False,
        strip_accents=False,
        split=True,
        split_on_cjk=split_on_cjk,
        special_tokens_pattern=special_tokens_pattern,
    )


@register_kind("wordpiece")
class WordPieceTokenizer(Tokenizer):
    """BERT-style WordPiece tokenizer.

    Text is cleaned, (optionally) lowercased and accent-stripped as BERT does it
    (`bert_normalize`), split on whitespace, punctuation and CJK characters (each CJK
    character is its own word), then each word is split into the longest vocabulary pieces
    (continuations carry the `##` prefix). The ops are keras_hub's `pretokenize` and
    tensorflow-text's `FastWordpieceTokenizer`; ids match Hugging Face's `BertTokenizer`.

    WordPiece has no dedicated start/end tokens: `start_id` is `[CLS]` and `end_id` is
    `[SEP]`, as in BERT. `detokenize` joins words with single spaces, so a round trip
    gives `normalize(x)`: the lowercased, accent-stripped words joined by spaces.

    Args:
        vocabulary: list of tokens (index = id) or the path of a `vocab.txt` file.
        lowercase: lowercase the input (special tokens keep their case); plain Unicode
            lowercasing, as BERT does, not case folding.
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
            vocabulary = read_lines(vocabulary, "WordPiece vocabulary")
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("The WordPiece vocabulary contains duplicate tokens.")
        if "unk" not in dict(self._special_tokens):
            raise ValueError("A WordPiece tokenizer needs an 'unk' special token.")
        self._vocabulary = _compat.untracked(vocabulary)
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        specials = unique_tokens(dict(self._special_tokens))
        # keras_hub's pattern for words never split: the special tokens, escaped, as alternatives.
        self._special_pattern = "|".join(re.escape(t) for t in specials) or None
        # `bert_normalize` lowercases and strips accents before the layer sees the text.
        self._layer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary,
            lowercase=False,
            strip_accents=False,
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
        strings = bert_normalize(strings, self.lowercase, self.strip_accents, self._special_pattern)
        ids = self._layer.tokenize(strings)
        return tf.cast(ids, tf.int32).with_row_splits_dtype(tf.int64)

    def _detokenize_impl(self, ids):
        return _compat.wordpiece_detokenizer(self._layer).detokenize(ids)

    def _normalize_impl(self, strings):
        words = pretokenize_words(
            strings, self.lowercase, self.strip_accents, self.split_on_cjk, self._special_pattern
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
        text = "".join(token + "\n" for token in self._vocabulary)
        atomic_write_text(os.path.join(directory, VOCAB_FILENAME), text)
        return {"vocabulary": VOCAB_FILENAME}

    @classmethod
    def _from_files(cls, directory: str, config: dict[str, Any]) -> WordPieceTokenizer:
        return cls(
            cls._config_file(directory, config, "vocabulary"),
            special_tokens=config["special_tokens"],
            **config["options"],
        )
