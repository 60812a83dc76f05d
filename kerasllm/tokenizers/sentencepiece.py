"""SentencePiece tokenizer (unigram or BPE) on tensorflow-text's SentencepieceTokenizer op."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from kerasllm import _compat
from kerasllm.tokenizers.base import Tokenizer, register_kind
from kerasllm.utils.files import atomic_write_bytes

MODEL_FILENAME = "spm.model"
DEFAULT_SPECIAL_TOKENS = {
    "pad": "<pad>",
    "unk": "<unk>",
    "start": "<s>",
    "end": "</s>",
    "mask": "<mask>",
    "cls": "<cls>",
    "sep": "<sep>",
}
_WORD_BOUNDARY = "\u2581"


@register_kind("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    """SentencePiece tokenizer running the tensorflow-text `SentencepieceTokenizer` op.

    Models trained by `train_sentencepiece` put `<pad>` at id 0 and `<unk>` at id 1; the
    other special tokens are SentencePiece *user-defined symbols*, so when they appear in
    text they are never split (the `<pad>` and `<unk>` pieces themselves are not matched
    in text, as in any SentencePiece model). With byte fallback (the default when
    training), any text round-trips: `detokenize(tokenize(x)) == normalize(x)`, where
    `normalize` is Unicode NFKC, control characters dropped and whitespace collapsed
    (SentencePiece's `nmt_nfkc` rule).

    Args:
        model: the serialized model proto (bytes) or the path of a `.model` file.
        special_tokens: `{role: token}`; every token must be a piece of the model.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_sentencepiece(["the cat sat on the mat"] * 50, vocabulary_size=300)
    >>> tok.detokenize(tok.tokenize("the  cat <mask>")).numpy().decode()
    'the cat <mask>'
    """

    def __init__(
        self,
        model: bytes | str,
        special_tokens: dict[str, str] | None = None,
        name: str | None = None,
    ):
        super().__init__(dict(special_tokens or DEFAULT_SPECIAL_TOKENS), name=name)
        source = "`model`"
        if isinstance(model, (str, os.PathLike)):
            source = f"The SentencePiece model file {os.fspath(model)}"
            with open(model, "rb") as f:
                model = f.read()
        if not isinstance(model, bytes):
            raise ValueError(f"`model` must be bytes or a file path. Received {type(model)}.")
        try:
            processor = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError as error:  # sentencepiece's parse error names neither file nor cause
            raise ValueError(
                f"{source} is not a SentencePiece model (truncated or corrupt?): {error}"
            ) from None
        if processor.get_piece_size() == 0:  # an empty proto parses, then fails in the TF op
            raise ValueError(f"{source} is an empty SentencePiece model (no pieces).")
        self._model_proto = _compat.untracked(model)
        self._vocabulary = _compat.untracked(
            [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        )
        self._byte_flags = _compat.untracked(
            [processor.is_byte(i) for i in range(processor.get_piece_size())]
        )
        self._op = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
        #: `{"alpha", "nbest_size"}` when `tokenize` samples segmentations, else None.
        self.sampling = None
        self._post_init()

    def with_sampling(self, alpha: float = 0.1, nbest_size: int = 64) -> SentencePieceTokenizer:
        """A copy of this tokenizer whose `tokenize` samples a segmentation of each text
        (subword regularization, Kudo 2018) instead of returning the most likely one.

        Meant for training inputs: every epoch sees other segmentations of the same words, so
        the model learns how pieces compose into words (names, rare words). Evaluation and
        inference keep the deterministic tokenizer; the copy saves and detokenizes exactly as
        this one (a saved tokenizer never samples). Sampling is random per call (the op takes
        no seed).

        Args:
            alpha: inverse temperature of the segmentation probabilities, > 0; smaller is
                noisier. With `nbest_size=-1`, values below about 0.2 split most words into
                characters.
            nbest_size: sample among the `nbest_size` most likely segmentations (> 1), or from
                the whole lattice (-1).

        Example:

        >>> import kerasllm.tokenizers as kt
        >>> tok = kt.train_sentencepiece(["the cathedral sat on the mat"] * 50, 300)
        >>> noisy = tok.with_sampling(alpha=0.1, nbest_size=-1)
        >>> len({tuple(noisy.tokenize("cathedral").numpy()) for _ in range(20)}) > 1
        True
        >>> noisy.detokenize(noisy.tokenize("the cathedral")).numpy().decode()
        'the cathedral'
        """
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"`alpha` must be a number > 0; got {alpha!r}.")
        if isinstance(nbest_size, bool) or not isinstance(nbest_size, int):
            raise ValueError(f"`nbest_size` must be an int (-1 or > 1); got {nbest_size!r}.")
        if nbest_size in (0, 1) or nbest_size < -1:
            raise ValueError(
                f"`nbest_size` must be -1 (the whole lattice) or > 1 (that many best "
                f"segmentations); got {nbest_size} (0 and 1 do not sample)."
            )
        copy = type(self)(self._model_proto, dict(self._special_tokens), name=self.name)
        copy.unify_typography = self.unify_typography
        copy._op = tf_text.SentencepieceTokenizer(
            model=self._model_proto, out_type=tf.int32, nbest_size=nbest_size, alpha=alpha
        )
        copy.sampling = {"alpha": float(alpha), "nbest_size": nbest_size}
        return copy

    def _tokenize_impl(self, strings):
        return self._op.tokenize(strings).with_row_splits_dtype(tf.int64)

    def _detokenize_impl(self, ids):
        return self._op.detokenize(ids)

    def _normalize_impl(self, strings):
        text = tf_text.normalize_utf8(strings, "NFKC")
        # nmt_nfkc drops control characters and treats any whitespace as a space.
        text = tf.strings.regex_replace(text, r"[\x00-\x08\x0e-\x1f\x7f]", "")
        text = tf.strings.regex_replace(text, r"\s+", " ")
        return tf.strings.strip(text)

    def get_vocabulary(self) -> list[str]:
        return self._vocabulary

    def _word_start_flags(self) -> np.ndarray:
        return np.array(
            [
                t.startswith(_WORD_BOUNDARY) and not b
                for t, b in zip(self._vocabulary, self._byte_flags)
            ]
        )

    @property
    def model_proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._model_proto

    def _save_files(self, directory: str) -> dict[str, str]:
        atomic_write_bytes(os.path.join(directory, MODEL_FILENAME), self._model_proto)
        return {"model": MODEL_FILENAME}

    def _options(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_files(cls, directory: str, config: dict[str, Any]) -> SentencePieceTokenizer:
        return cls(
            cls._config_file(directory, config, "model"),
            special_tokens=config["special_tokens"],
        )
