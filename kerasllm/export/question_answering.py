"""`QuestionAnswererServing`: the `(question, context) -> (answer, score)` signature of a
`QuestionAnswerer` export."""

from __future__ import annotations

from kerasllm import _compat
from kerasllm.export.serving import _TEXT, ServingModule, _bounded, _positions_limit
from kerasllm.preprocessors.question_answering import (
    DEFAULT_MAX_ANSWER_LENGTH,
    DEFAULT_STRIDE,
    QuestionAnswererPreprocessor,
    best_spans,
)


class QuestionAnswererServing(ServingModule):
    """Extractive question answering signatures for a `QuestionAnswerer`.

    `serving_default(question, context)` (two 1-D string inputs of the same batch size)
    returns, per pair, `answer` (string, sliced from the context), `score` (float32, the
    span's probability p_start * p_end in its window), and `start`, `end` (int32 character
    offsets into the context, -1 without an answer). The pairs are framed in windows by the
    `QuestionAnswererPreprocessor` the model predicts with (its `sequence_length`, `stride`
    and `max_question_length`), and `best_spans` picks the answer across a context's windows,
    exactly as `QuestionAnswerer.answer` does. An empty context (or one without a word) gets
    answer "" and score 0; an empty question is answered from the context alone.

    Args:
        model: the `QuestionAnswerer`.
        tokenizer: its tokenizer.
        sequence_length: longest window in tokens (default: the model's preprocessor's, else
            the model's `max_sequence_length`).
        max_answer_length: most tokens of an answer.
    """

    def __init__(
        self,
        model,
        tokenizer,
        sequence_length=None,
        max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        metadata=None,
    ):
        super().__init__(model, {"text": tokenizer}, metadata)
        limit = _positions_limit(model.backbone)
        own = model.preprocessor
        length = sequence_length or (own.sequence_length if own is not None else limit)
        self.sequence_length = _bounded("sequence_length", length, limit)
        self.max_answer_length = _bounded(
            "max_answer_length", min(max_answer_length, self.sequence_length), limit
        )
        stride = own.stride if own is not None else DEFAULT_STRIDE
        question_length = None
        if own is not None and own.max_question_length <= self.sequence_length - 4:
            question_length = own.max_question_length
        # Untracked: its tokenizer's resources are saved through `self.tokenizers`.
        self.preprocessor = _compat.untracked(
            QuestionAnswererPreprocessor(
                tokenizer,
                self.sequence_length,
                stride=stride,
                max_question_length=question_length,
            )
        )
        self._add("serving_default", self._serve, _TEXT, _TEXT)

    def _serve(self, question, context):
        encoded = self.preprocessor.encode((question, context))
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        logits = self.model(inputs)
        spans = best_spans(logits, encoded, self.max_answer_length, n_best=1)
        return {key: value[:, 0] for key, value in spans.items()}
