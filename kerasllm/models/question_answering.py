"""Extractive question answering: `QuestionAnswerer`, a span head (start/end logits per token)
on an `Encoder`, and its loss `SpanCrossEntropy`."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerasllm.models.encoder import Encoder
from kerasllm.models.task import DEFAULT_BATCH_SIZE, Task
from kerasllm.preprocessors.question_answering import (
    DEFAULT_MAX_ANSWER_LENGTH,
    QuestionAnswererPreprocessor,
    best_spans,
)

#: The logit padded positions get, so that no probability goes to them (float32 logits).
_PADDING_LOGIT = -1e9


def _span_nll(y_true, y_pred):
    """(B,) mean of the start and end negative log-likelihoods; `y_true` (B, 2) positions,
    `y_pred` (B, L, 2) logits."""
    log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=1)
    positions = ops.cast(y_true, "int32")
    start = ops.take_along_axis(log_probs[:, :, 0], positions[:, :1], axis=1)[:, 0]
    end = ops.take_along_axis(log_probs[:, :, 1], positions[:, 1:2], axis=1)[:, 0]
    return -(start + end) / 2.0


@keras.saving.register_keras_serializable(package="kerasllm")
class SpanCrossEntropy(keras.losses.Loss):
    """Span cross-entropy: the mean of the start and end positions' cross-entropies over the
    sequence (BERT's SQuAD loss). `y_true` int (B, 2) start/end token positions, `y_pred`
    float (B, L, 2) logits.

    >>> import numpy as np
    >>> logits = np.zeros((1, 4, 2), "float32")
    >>> round(float(SpanCrossEntropy()(np.array([[1, 2]]), logits)), 4)  # log(4)
    1.3863
    """

    def __init__(self, name: str = "span_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _span_nll(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kerasllm")
def span_exact_match(y_true, y_pred):
    """1.0 where both the argmax start and end positions equal the labels (per window)."""
    predicted = ops.argmax(y_pred, axis=1)  # (B, 2)
    same = ops.equal(ops.cast(predicted, "int32"), ops.cast(y_true, "int32"))
    return ops.cast(ops.all(same, axis=-1), "float32")


@keras.saving.register_keras_serializable(package="kerasllm")
class QuestionAnswerer(Task):
    """Extractive question answering on an `Encoder`: start and end logits for every token.

    Input: the encoder's dict (`token_ids`, `padding_mask`, `segment_ids`), one row per
    window `[cls] question [sep] context [sep]`. Output: float32 (B, T, 2), `[..., 0]` the
    start and `[..., 1]` the end logits; padded positions get -1e9 (no probability).

    With a preprocessor (`QuestionAnswererPreprocessor`, which `zoo.get(name,
    task="question_answerer")` attaches when the preset ships a tokenizer), `fit` / `evaluate`
    take `x=(questions, contexts)` and `y` the answers' character offsets (B, 2), and
    `answer(questions, contexts)` returns the answer text and score of each pair (long
    contexts in windows, see the preprocessor); `predict((questions, contexts))` returns the
    same best spans as arrays `{"start", "end", "score"}` (character offsets, -1 for none).

    Args:
        backbone: the `Encoder`.
        dropout: dropout before the span head.
        preprocessor: optional `QuestionAnswererPreprocessor`.

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> tuple(QuestionAnswerer(encoder)(
    ...     {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
    ... ).shape)
    (2, 6, 2)
    """

    #: What `kerasllm.preprocessors.for_task` builds for this task.
    preprocessor_class = QuestionAnswererPreprocessor
    default_learning_rate = 5e-5

    def __init__(self, backbone, dropout: float = 0.1, preprocessor=None, **kwargs):
        super().__init__(backbone, preprocessor=preprocessor, **kwargs)
        self._require_backbone(Encoder)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}.")
        self.dropout = dropout
        self.head_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy)
        self.span_head = keras.layers.Dense(
            2,
            kernel_initializer=backbone.make_initializer(),
            dtype=backbone.dtype_policy,
            name="span_head",
        )
        self.span_head.build((None, None, backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.backbone(inputs, training=training)["sequence_output"]
        logits = self._float32(self.span_head(self.head_dropout(hidden, training=training)))
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            return logits
        real = ops.cast(padding_mask, "bool")[:, :, None]
        return ops.where(real, logits, ops.full_like(logits, _PADDING_LOGIT))

    def default_loss(self) -> keras.losses.Loss:
        return SpanCrossEntropy()

    def default_metrics(self) -> list:
        return [keras.metrics.MeanMetricWrapper(span_exact_match, name="span_accuracy")]

    def answer(
        self,
        questions,
        contexts,
        *,
        n_best: int = 1,
        max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list:
        """The best answers to each (question, context) pair, read from the context.

        Args:
            questions, contexts: lists of str of the same length (or two strings).
            n_best: answers per pair (best first).
            max_answer_length: most tokens of an answer.
            batch_size: pairs framed at a time (their windows go through the model in
                batches of at least 64).

        Returns:
            Per pair, a dict `{"answer", "score", "start", "end"}` (character offsets into the
            context; an empty context gives answer "" with score 0.0), or with `n_best > 1` a
            list of `n_best` such dicts. Two strings give one result rather than a list.

        Raises:
            ValueError: the model has no preprocessor, or the batches differ in length.
        """
        if self.preprocessor is None:
            raise ValueError(
                "`answer` needs a preprocessor: build the model with `zoo.get(name, "
                "task='question_answerer')` or set `model.preprocessor = "
                "QuestionAnswererPreprocessor(tokenizer)`."
            )
        single = isinstance(questions, str) and isinstance(contexts, str)
        if single:
            questions, contexts = [questions], [contexts]
        questions, contexts = list(questions), list(contexts)
        if len(questions) != len(contexts):
            raise ValueError(
                f"{len(questions)} questions for {len(contexts)} contexts; pass one each."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
        results = []
        for begin in range(0, len(questions), batch_size):
            encoded = self.preprocessor.encode(
                (questions[begin : begin + batch_size], contexts[begin : begin + batch_size])
            )
            inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
            # A long context gives many windows: they go through the model in larger batches.
            logits = self._window_logits(inputs, max(batch_size, 64))
            spans = best_spans(logits, encoded, max_answer_length, n_best)
            spans = {k: v.numpy() for k, v in spans.items()}
            for row in range(len(spans["answer"])):
                best = [
                    {
                        "answer": spans["answer"][row, n].decode("utf-8", errors="replace"),
                        "score": float(spans["score"][row, n]),
                        "start": int(spans["start"][row, n]),
                        "end": int(spans["end"][row, n]),
                    }
                    for n in range(n_best)
                ]
                results.append(best if n_best > 1 else best[0])
        return results[0] if single else results

    def _window_logits(self, inputs: dict, batch_size: int):
        """Logits of every window, `batch_size` windows per call (a long context has many)."""
        count = int(inputs["token_ids"].shape[0])
        parts = [
            ops.convert_to_numpy(
                self({k: v[i : i + batch_size] for k, v in inputs.items()}, training=False)
            )
            for i in range(0, count, batch_size)
        ]
        width = int(inputs["token_ids"].shape[1])
        return np.concatenate(parts) if parts else np.zeros((0, width, 2), "float32")

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout}
