"""Tokenizers: WordPiece, SentencePiece and byte-level BPE, as pure TensorFlow ops.

Every tokenizer is a `tf.Module` (`Tokenizer`) with `tokenize`/`detokenize` that run
eagerly, in `tf.function`, in `tf.data` and in an exported SavedModel. Pad id is 0.

Example:

>>> import kerasllm.tokenizers as kt
>>> tok = kt.train_sentencepiece(["the cat sat on the mat"] * 50, vocabulary_size=300)
>>> ids = tok.tokenize(["the cat", "the mat"])
>>> [s.decode() for s in tok.detokenize(ids).numpy()]
['the cat', 'the mat']
"""

from kerasllm.tokenizers.base import (
    SENTINEL_FORMAT,
    SPECIAL_ROLES,
    Tokenizer,
    load,
    sentinel_ids,
    sentinel_tokens,
)
from kerasllm.tokenizers.byte_bpe import ByteBPETokenizer
from kerasllm.tokenizers.sentencepiece import SentencePieceTokenizer
from kerasllm.tokenizers.trainers import train_byte_bpe, train_sentencepiece, train_wordpiece
from kerasllm.tokenizers.wordpiece import WordPieceTokenizer, bert_normalize

__all__ = [
    "SENTINEL_FORMAT",
    "SPECIAL_ROLES",
    "ByteBPETokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "bert_normalize",
    "load",
    "sentinel_ids",
    "sentinel_tokens",
    "train_byte_bpe",
    "train_sentencepiece",
    "train_wordpiece",
]
