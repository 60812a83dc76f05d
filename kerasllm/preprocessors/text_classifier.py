"""`TextClassifierPreprocessor`: strings (or sentence pairs) to `SequenceClassifier` inputs."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kerasllm.preprocessors.packing import (
    body_length,
    boundary_ids,
    check_truncate,
    pack_segments,
)
from kerasllm.preprocessors.preprocessor import Preprocessor, as_strings
from kerasllm.preprocessors.words import is_word_lists


@keras.saving.register_keras_serializable(package="kerasllm")
class TextClassifierPreprocessor(Preprocessor):
    """Frames texts for sequence classification: `[cls] a [sep]`, or `[cls] a [sep] b [sep]`.

    `x` is a batch of strings (a list, numpy array or `tf.string` tensor, or one string), or a
    **tuple** of such batches for sentence pairs (`(premises, hypotheses)`); a list is always
    one batch of single texts. Tokenizers without cls/sep frame with start/end. Pairs get
    segment ids 0 on `[cls] a [sep]` and 1 on `b [sep]`. Texts are truncated so that each row
    has at most `sequence_length` tokens; for pairs `truncate` decides which side loses tokens:
    "round_robin" (default; the longer side first) or "waterfall" (the last segment first).

    Texts and pairs are framed by `pack_segments`, as `kerasllm.data.classification_dataset`
    frames them in training, and the exported classification signature is this preprocessor
    (a text that yields no token gets one pad-id filler token, so no row is fully masked;
    training skips such texts). Word lists are `TokenClassifierPreprocessor`'s input.

    A batch is padded to its longest row (less compute on short texts);
    `pad_to_sequence_length=True` pads every batch to `sequence_length` (static shapes).

    Returns `keras.utils.pack_x_y_sample_weight(x, y, sample_weight)` with
    `x = {"token_ids", "padding_mask", "segment_ids"}` int32 (B, L); a scalar string gives
    1-D outputs (an unbatched `tf.data` element).

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["a good film", "a bad film"] * 10, vocabulary_size=40)
    >>> pre = TextClassifierPreprocessor(tok, sequence_length=16)
    >>> x = pre(["a good film"])
    >>> ids = x["token_ids"].numpy()[0].tolist()
    >>> ids[0] == tok.cls_id and ids[-1] == tok.sep_id, x["padding_mask"].numpy().tolist()
    (True, [[1, 1, 1, 1, 1]])
    >>> x, y = pre((["a good film"], ["a bad film"]), [1])
    >>> x["segment_ids"].numpy().tolist()
    [[0, 0, 0, 0, 0, 1, 1, 1, 1]]
    """

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 128,
        truncate: str = "round_robin",
        pad_to_sequence_length: bool = False,
        **kwargs,
    ):
        super().__init__(tokenizer, sequence_length, pad_to_sequence_length, **kwargs)
        self.truncate = check_truncate(truncate)

    def call(self, x, y=None, sample_weight=None):
        segments = list(x) if isinstance(x, tuple) else [x]
        if not 1 <= len(segments) <= 2:
            raise ValueError(
                "`x` must be a batch of texts or a tuple of two batches (sentence pairs); got "
                f"a tuple of {len(segments)}."
            )
        names = ["x"] if len(segments) == 1 else ["x[0]", "x[1]"]
        for segment, name in zip(segments, names):
            if isinstance(segment, tf.RaggedTensor) or is_word_lists(segment):
                raise TypeError(
                    f"`{name}` must be texts (strings), not word lists; word lists are "
                    "TokenClassifierPreprocessor's input."
                )
        segments = [as_strings(s, name) for s, name in zip(segments, names)]
        scalar = segments[0].shape.rank == 0
        if any((s.shape.rank == 0) != scalar for s in segments):
            raise ValueError("The texts of a pair must both be strings or both be batches.")
        if scalar:
            segments = [s[None] for s in segments]
        first, last = boundary_ids(self._require_tokenizer())
        body_length(self.sequence_length, len(segments), first, last)  # clear error early
        inputs = pack_segments(
            [self.tokenize(s) for s in segments],
            self.sequence_length,
            first,
            last,
            truncate=self.truncate,
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        if scalar:
            inputs = {key: value[0] for key, value in inputs.items()}
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "truncate": self.truncate,
        }
