"""Classification tasks: `SequenceClassifier`, `TokenClassifier`."""

from __future__ import annotations

import keras
from keras import ops

from kerasllm.models.decoder import Decoder
from kerasllm.models.encoder import Encoder
from kerasllm.models.task import Task
from kerasllm.preprocessors.text_classifier import TextClassifierPreprocessor
from kerasllm.preprocessors.token_classifier import TokenClassifierPreprocessor
from kerasllm.preprocessors.windows import predict_long

POOLINGS = ("pooled", "first", "mean", "last")


@keras.saving.register_keras_serializable(package="kerasllm")
class SequenceClassifier(Task):
    """One label per sequence, on an `Encoder` or a `Decoder`.

    Args:
        backbone: the `Encoder` or `Decoder`.
        num_classes: number of labels.
        dropout: dropout before the output layer.
        pooling: "pooled" (the encoder's pooler output; default for encoders), "first" (first
            token), "mean" (mean over real tokens) or "last" (last real token; default for
            decoders, which only see the whole sequence there).
        preprocessor: optional `kerasllm.preprocessors.TextClassifierPreprocessor`; with it,
            `fit` / `evaluate` / `predict` take raw strings (and sentence pairs), and a
            `.keras` file carries it with its tokenizer. `kerasllm.zoo.get(name,
            task="classifier", ...)` attaches one when the preset ships a tokenizer.

    Returns float32 logits (B, num_classes).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> tuple(SequenceClassifier(encoder, num_classes=3)(
    ...     {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
    ... ).shape)
    (2, 3)
    """

    #: What `kerasllm.preprocessors.for_task` builds for this task.
    preprocessor_class = TextClassifierPreprocessor

    def __init__(
        self,
        backbone,
        num_classes: int,
        dropout: float = 0.1,
        pooling=None,
        preprocessor=None,
        **kwargs,
    ):
        super().__init__(backbone, preprocessor=preprocessor, **kwargs)
        self._require_backbone(Encoder, Decoder)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
        if pooling is None:
            pooling = "pooled" if isinstance(backbone, Encoder) and backbone.pooler else "last"
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {list(POOLINGS)}; got {pooling!r}.")
        if pooling == "pooled" and not isinstance(backbone, Encoder):
            raise ValueError("pooling='pooled' needs an Encoder backbone with a pooler.")
        self.num_classes = num_classes
        self.dropout = dropout
        self.pooling = pooling
        self.head_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy)
        self.classifier = keras.layers.Dense(
            num_classes,
            kernel_initializer=backbone.make_initializer(),
            dtype=backbone.dtype_policy,
            name="classifier",
        )
        self.classifier.build((None, backbone.hidden_dim))
        self.built = True

    def pool(self, outputs: dict, padding_mask):
        """The features the classification head sees: the `pooling` of the backbone outputs."""
        hidden = outputs["sequence_output"]
        if self.pooling == "pooled":
            return outputs["pooled_output"]
        if self.pooling == "first":
            return hidden[:, 0]
        mask = ops.cast(padding_mask, hidden.dtype)
        if self.pooling == "mean":
            total = ops.sum(hidden * mask[:, :, None], axis=1)
            return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1)
        last = ops.maximum(ops.cast(ops.sum(mask, axis=1), "int32") - 1, 0)
        return ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

    def call(self, inputs, training=None):
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = ops.ones_like(inputs["token_ids"])
        pooled = self.pool(self.backbone(inputs, training=training), padding_mask)
        return self._float32(self.classifier(self.head_dropout(pooled, training=training)))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "pooling": self.pooling,
        }

    def predict(self, *args, stride: int | None = None, **kwargs):
        """`Task.predict`; with `stride` (texts only), a text longer than the preprocessor's
        `sequence_length` is read in overlapping windows whose starts are `stride` tokens
        apart, and its class probabilities are the mean of its windows' (returned as their
        log, which softmax turns back into the mean); see `kerasllm.preprocessors.windows`.
        Without `stride`, long texts are truncated."""
        if stride is None:
            return super().predict(*args, **kwargs)
        return _predict_windows(self, args, kwargs, stride)


@keras.saving.register_keras_serializable(package="kerasllm")
class TokenClassifier(Task):
    """One label per token (NER, tagging) on an `Encoder`. Returns float32 (B, T, num_classes).

    With a `preprocessor` (a `kerasllm.preprocessors.TokenClassifierPreprocessor`), `fit` /
    `evaluate` take texts or word lists with one label per word, and `predict` on them returns
    per-word logits (see that class).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> tuple(TokenClassifier(encoder, num_classes=5)(
    ...     {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
    ... ).shape)
    (2, 6, 5)
    """

    #: What `kerasllm.preprocessors.for_task` builds for this task.
    preprocessor_class = TokenClassifierPreprocessor

    def __init__(self, backbone, num_classes: int, dropout: float = 0.1, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(Encoder)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
        self.num_classes = num_classes
        self.dropout = dropout
        self.head_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy)
        self.classifier = keras.layers.Dense(
            num_classes,
            kernel_initializer=backbone.make_initializer(),
            dtype=backbone.dtype_policy,
            name="classifier",
        )
        self.classifier.build((None, None, backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.backbone(inputs, training=training)["sequence_output"]
        return self._float32(self.classifier(self.head_dropout(hidden, training=training)))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dropout": self.dropout}

    def predict(self, *args, stride: int | None = None, **kwargs):
        """`Task.predict`; with `stride` (texts or word lists only), a text longer than the
        preprocessor's `sequence_length` is read in overlapping windows whose starts are
        `stride` tokens apart, and each word takes the logits of the window where its first
        sub-word has the most context (BERT's rule); the result is (B, W, num_classes) with W
        the most words of a text, NaN past a text's words. See
        `kerasllm.preprocessors.windows`. Without `stride`, words past the sequence length are
        not classified (NaN)."""
        if stride is None:
            return super().predict(*args, **kwargs)
        return _predict_windows(self, args, kwargs, stride)


def _predict_windows(model, args: tuple, kwargs: dict, stride: int):
    """`predict(x, batch_size=None, verbose=...)` over windows (`windows.predict_long`)."""
    names = ("x", "batch_size", "verbose")
    if len(args) > len(names):
        raise TypeError("With `stride`, `predict` takes x, batch_size and verbose only.")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names or key in bound:
            raise TypeError(f"With `stride`, `predict` does not take `{key}`.")
        bound[key] = value
    if "x" not in bound:
        raise TypeError("`predict` needs `x`.")
    return predict_long(model, bound["x"], stride, bound.get("batch_size"))
