"""Preprocessors: strings in, task-model inputs out (one module per task role).

A preprocessor is a Keras layer that owns a kerasllm tokenizer, frames and truncates text and
returns `(x, y, sample_weight)` like `keras.utils.pack_x_y_sample_weight`; it runs as a
`tf.data` map, eagerly and inside exported graphs, and a `.keras` file carries its tokenizer.
Task models hold one (`model.preprocessor`), so `fit` / `evaluate` / `predict` take raw text.

Example:
>>> import kerasllm.tokenizers as kt
>>> from kerasllm import preprocessors
>>> tok = kt.train_wordpiece(["a good film", "a bad film"] * 10, vocabulary_size=40)
>>> pre = preprocessors.TextClassifierPreprocessor(tok, sequence_length=16)
>>> x, y = pre(["a good film", "bad"], [1, 0])
>>> x["token_ids"].shape
TensorShape([2, 5])
"""

from __future__ import annotations

from kerasllm.preprocessors.packing import TRUNCATIONS, boundary_ids, pack_segments
from kerasllm.preprocessors.preprocessor import Preprocessor
from kerasllm.preprocessors.text_classifier import TextClassifierPreprocessor

#: The default `sequence_length` of a preprocessor `for_task` builds (capped by the model's
#: `max_sequence_length`): batches are padded to their longest text, so a generous limit
#: costs nothing on short texts.
DEFAULT_SEQUENCE_LENGTH = 128


def _preprocessor_class(task_model) -> type[Preprocessor] | None:
    # Each task model class names its preprocessor (`preprocessor_class`): preprocessors sit
    # below models in the layering, so they never import a model class to look it up.
    return getattr(type(task_model), "preprocessor_class", None)


def exists_for(task_model) -> bool:
    """Whether `for_task` can build a preprocessor for `task_model` (a task model class that
    has one: `SequenceClassifier` so far)."""
    return _preprocessor_class(task_model) is not None


def for_task(task_model, tokenizer, sequence_length: int | None = None) -> Preprocessor:
    """The preprocessor that fits `task_model` (e.g. a `TextClassifierPreprocessor` for a
    `SequenceClassifier`), built on `tokenizer`.

    Args:
        task_model: a `kerasllm.models.Task`.
        tokenizer: a `kerasllm.tokenizers.Tokenizer` (its ids must fit the model's vocabulary).
        sequence_length: the longest input; default `DEFAULT_SEQUENCE_LENGTH`, capped by the
            backbone's `max_sequence_length`.

    Raises:
        ValueError: no preprocessor exists yet for this kind of task model, the tokenizer's
            vocabulary size differs from the model's, or `sequence_length` exceeds the
            model's `max_sequence_length`.
    """
    from kerasllm.tokenizers.base import check_vocabulary_match

    if not exists_for(task_model):
        raise ValueError(
            f"No preprocessor exists yet for {type(task_model).__name__}; available for: "
            "SequenceClassifier. Pass token-id dicts to the model instead."
        )
    check_vocabulary_match(task_model, tokenizer)
    limit = getattr(task_model.backbone, "max_sequence_length", None)
    if sequence_length is None:
        sequence_length = min(DEFAULT_SEQUENCE_LENGTH, limit or DEFAULT_SEQUENCE_LENGTH)
    elif limit is not None and sequence_length > limit:
        raise ValueError(
            f"`sequence_length` {sequence_length} exceeds the model's max_sequence_length {limit}."
        )
    return _preprocessor_class(task_model)(tokenizer, sequence_length=sequence_length)


__all__ = [
    "DEFAULT_SEQUENCE_LENGTH",
    "TRUNCATIONS",
    "Preprocessor",
    "TextClassifierPreprocessor",
    "boundary_ids",
    "exists_for",
    "for_task",
    "pack_segments",
]
