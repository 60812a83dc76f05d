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

import inspect

from kerasllm.preprocessors.causal_lm import CausalLMPreprocessor
from kerasllm.preprocessors.generative import GenerativePreprocessor, ids_to_text
from kerasllm.preprocessors.masked_lm import MaskedLMPreprocessor, mask_tokens
from kerasllm.preprocessors.packing import (
    TRUNCATIONS,
    boundary_ids,
    pack_segments,
    tokenize_text,
)
from kerasllm.preprocessors.preprocessor import Preprocessor
from kerasllm.preprocessors.question_answering import QuestionAnswererPreprocessor, best_spans
from kerasllm.preprocessors.seq2seq_lm import Seq2SeqLMPreprocessor
from kerasllm.preprocessors.text_classifier import TextClassifierPreprocessor
from kerasllm.preprocessors.token_classifier import TokenClassifierPreprocessor

#: The default `sequence_length` of a preprocessor `for_task` builds (capped by the model's
#: `max_sequence_length`): batches are padded to their longest text, so a generous limit
#: costs nothing on short texts.
DEFAULT_SEQUENCE_LENGTH = 128


def _preprocessor_class(task_model) -> type[Preprocessor] | None:
    # Each task model class names its preprocessor (`preprocessor_class`): preprocessors sit
    # below models in the layering, so they never import a model class to look it up.
    return getattr(type(task_model), "preprocessor_class", None)


def exists_for(task_model) -> bool:
    """Whether `for_task` can build a preprocessor for `task_model` (its class names one in
    `preprocessor_class`)."""
    return _preprocessor_class(task_model) is not None


def _tokenizer_arguments(preprocessor_class: type, tokenizer) -> dict:
    """`tokenizer=` (and `target_tokenizer=`) for a preprocessor class, from one tokenizer or a
    bundle's `{role: tokenizer}` ("text"; or "source" and "target")."""
    if not isinstance(tokenizer, dict):
        return {"tokenizer": tokenizer}
    main = tokenizer.get("text", tokenizer.get("source"))
    if main is None:
        raise ValueError(
            "A `{role: tokenizer}` dict needs a 'text' or a 'source' tokenizer; got roles "
            f"{sorted(tokenizer)}."
        )
    target = tokenizer.get("target")
    if target is None or target is main:
        return {"tokenizer": main}
    if "target_tokenizer" not in inspect.signature(preprocessor_class).parameters:
        raise ValueError(
            f"{preprocessor_class.__name__} takes one tokenizer; got a separate 'target' one."
        )
    return {"tokenizer": main, "target_tokenizer": target}


def for_task(task_model, tokenizer, sequence_length: int | None = None, **options) -> Preprocessor:
    """The preprocessor that fits `task_model` (e.g. a `TextClassifierPreprocessor` for a
    `SequenceClassifier`), built on `tokenizer`.

    Args:
        task_model: a `kerasllm.models.Task`.
        tokenizer: a `kerasllm.tokenizers.Tokenizer` (its ids must fit the model's vocabulary),
            or a `{role: tokenizer}` dict as bundles hold them: "text", or "source" and
            "target" (a `Seq2SeqLM` then tokenizes each side with its own).
        sequence_length: the longest input; default `DEFAULT_SEQUENCE_LENGTH`, capped by the
            backbone's `max_sequence_length`.
        **options: further arguments of the preprocessor class (e.g. a `Seq2SeqLM`'s
            `decoder_sequence_length`).

    Raises:
        ValueError: no preprocessor exists yet for this kind of task model, the tokenizer's
            vocabulary size differs from the model's, or `sequence_length` exceeds the
            model's `max_sequence_length`.
    """
    from kerasllm.tokenizers.base import check_vocabulary_match

    if not exists_for(task_model):
        raise ValueError(
            f"No preprocessor exists for {type(task_model).__name__} (a task model class names "
            "its own in `preprocessor_class`). Pass token-id dicts to the model instead."
        )
    check_vocabulary_match(task_model, tokenizer)
    limit = getattr(task_model.backbone, "max_sequence_length", None)
    if sequence_length is None:
        sequence_length = min(DEFAULT_SEQUENCE_LENGTH, limit or DEFAULT_SEQUENCE_LENGTH)
    elif limit is not None and sequence_length > limit:
        raise ValueError(
            f"`sequence_length` {sequence_length} exceeds the model's max_sequence_length {limit}."
        )
    preprocessor_class = _preprocessor_class(task_model)
    arguments = _tokenizer_arguments(preprocessor_class, tokenizer)
    return preprocessor_class(**arguments, **options, sequence_length=sequence_length)


def attach(task_model, tokenizer, **options) -> Preprocessor | None:
    """Gives `task_model` its preprocessor on `tokenizer`, as `kerasllm.bundle.load` does: the
    preprocessor its saved config carried (options kept, tokenizers set: a config holds no
    tokenizer), else a new one from `for_task`. Task models without a preprocessor class are
    left alone.

    Args:
        task_model: a `kerasllm.models.Task`.
        tokenizer: a tokenizer or a `{role: tokenizer}` dict (see `for_task`).
        **options: `for_task`'s options (`sequence_length`, ...) for a new preprocessor; a
            saved preprocessor keeps its own.

    Returns:
        The model's preprocessor, or None.

    Raises:
        ValueError: as `for_task`.
    """
    from kerasllm.tokenizers.base import check_vocabulary_match

    if not exists_for(task_model):
        return None
    saved = task_model.preprocessor
    if saved is None:
        task_model.preprocessor = for_task(task_model, tokenizer, **options)
        return task_model.preprocessor
    check_vocabulary_match(task_model, tokenizer)
    for name, value in _tokenizer_arguments(type(saved), tokenizer).items():
        setattr(saved, name, value)
    return saved


__all__ = [
    "DEFAULT_SEQUENCE_LENGTH",
    "TRUNCATIONS",
    "CausalLMPreprocessor",
    "GenerativePreprocessor",
    "MaskedLMPreprocessor",
    "Preprocessor",
    "QuestionAnswererPreprocessor",
    "Seq2SeqLMPreprocessor",
    "TextClassifierPreprocessor",
    "TokenClassifierPreprocessor",
    "attach",
    "best_spans",
    "boundary_ids",
    "exists_for",
    "for_task",
    "ids_to_text",
    "mask_tokens",
    "pack_segments",
    "tokenize_text",
]
