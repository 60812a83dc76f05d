"""`QuestionAnswererPreprocessor`: (question, context) pairs to windows of `QuestionAnswerer`
inputs, and `best_spans`, the post-processing from span logits back to answer text.

Everything here is TensorFlow / tensorflow-text ops (no `py_function`): the same code frames
training batches, `QuestionAnswerer.answer` and the exported `(question, context) -> (answer,
score)` signature (`kerasllm.export.QuestionAnswererServing`).

Offsets: the context is split into words at whitespace and punctuation (each punctuation
mark a word of its own, with its byte offsets); each word is tokenized on its own, and each of
its sub-words points back to the whole word. An answer is therefore a run of whole words (or
punctuation marks) of the context, sliced from the context itself, never text outside it.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from kerasllm.preprocessors.packing import boundary_ids, pack_segments, tokenize_text
from kerasllm.preprocessors.preprocessor import Preprocessor, as_strings

#: Where a context splits into words: whitespace, and around each punctuation mark or symbol.
WORD_DELIMITER = r"\s+|[\p{P}\p{S}]"
_KEEP_DELIMITER = r"[\p{P}\p{S}]"
#: Defaults of post-processing (as BERT's `run_squad.py`).
DEFAULT_MAX_ANSWER_LENGTH = 30
DEFAULT_STRIDE = 128
_NEG = -1e9


def _utf8(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def char_to_byte_offsets(texts: tf.Tensor, char_offsets: tf.Tensor) -> tf.Tensor:
    """Byte offsets (int64) of character offsets into UTF-8 `texts` (both (B,)); offsets past
    the end give the text's byte length."""
    char_offsets = tf.maximum(tf.cast(char_offsets, tf.int32), 0)
    prefix = tf.strings.substr(texts, tf.zeros_like(char_offsets), char_offsets, unit="UTF8_CHAR")
    return tf.cast(tf.strings.length(prefix), tf.int64)


def byte_to_char_offsets(texts: tf.Tensor, byte_offsets: tf.Tensor) -> tf.Tensor:
    """Character offsets (int32) of byte offsets into UTF-8 `texts` (same shape)."""
    byte_offsets = tf.maximum(tf.cast(byte_offsets, tf.int32), 0)
    prefix = tf.strings.substr(texts, tf.zeros_like(byte_offsets), byte_offsets)
    return tf.strings.length(prefix, unit="UTF8_CHAR")


def context_tokens(tokenizer, contexts: tf.Tensor) -> dict[str, tf.RaggedTensor]:
    """Tokenizes (B,) contexts word by word: `{"token_ids", "start", "end"}` ragged (B, None),
    each sub-word with its word's byte offsets into the (UTF-8-repaired) context.

    A word that follows whitespace is tokenized with a leading space (byte-level BPE then sees
    it as in running text; WordPiece and SentencePiece ignore it).
    """
    words, starts, ends = tf_text.regex_split_with_offsets(
        contexts, WORD_DELIMITER, _KEEP_DELIMITER
    )
    flat = words.flat_values
    column = tf.ragged.range(words.row_lengths()).flat_values
    previous_end = tf.concat([tf.constant([-1], tf.int64), ends.flat_values[:-1]], axis=0)
    spaced = (column > 0) & (starts.flat_values > previous_end)
    pieces = tokenize_text(tokenizer, tf.where(spaced, " " + flat, flat))
    counts = pieces.row_lengths()
    per_context = tf.reduce_sum(words.with_flat_values(counts), axis=1)

    def per_token(values):
        return tf.RaggedTensor.from_row_lengths(tf.repeat(values, counts), per_context)

    return {
        "token_ids": tf.RaggedTensor.from_row_lengths(pieces.flat_values, per_context),
        "start": per_token(starts.flat_values),
        "end": per_token(ends.flat_values),
    }


@keras.saving.register_keras_serializable(package="kerasllm")
class QuestionAnswererPreprocessor(Preprocessor):
    """Frames (question, context) pairs for extractive question answering, in windows.

    `x` is a tuple `(questions, contexts)` of string batches (or of two strings). Each pair is
    framed `[cls] question [sep] context-window [sep]` by `pack_segments` (segment ids 0 on
    the question, 1 on the context). Questions keep their first `max_question_length` tokens.
    A context longer than what is left of `sequence_length` is cut into overlapping windows
    whose starts are `stride` tokens apart (BERT's `doc_stride`), the last one ending at the
    context's last token, so every context token is in at least one window and a window ends
    at most `sequence_length` tokens long. One pair may so give several rows; `encode` says
    which example each row belongs to.

    `y` (optional) holds each answer's character offsets into its context, int (B, 2)
    `[start, end)`; a negative start marks a question without an answer. The labels are the
    positions of the answer's first and last sub-words in each window, int32 (N, 2), or
    `[0, 0]` (the `[cls]` token) in a window that does not hold the whole answer, as BERT
    trains on SQuAD. A `sample_weight` of one value per pair is repeated on its windows.

    Returns `keras.utils.pack_x_y_sample_weight(x, labels, sample_weight)` with
    `x = {"token_ids", "padding_mask", "segment_ids"}` int32 (N, L), N >= B windows.

    Args:
        tokenizer: a kerasllm tokenizer with cls/sep (or start/end) tokens.
        sequence_length: the longest window, framing tokens included.
        stride: tokens between the starts of two windows of a context (capped by the room the
            question leaves).
        max_question_length: most question tokens (default: min(64, a third of
            `sequence_length`)).
        pad_to_sequence_length: pad every batch to `sequence_length`.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["who sat on the mat ? the cat sat on the mat ."] * 10,
    ...                          vocabulary_size=60)
    >>> pre = QuestionAnswererPreprocessor(tok, sequence_length=8, stride=2)
    >>> x, y = pre((["who sat ?"], ["the cat sat on the mat ."]), [[4, 7]])
    >>> x["token_ids"].shape, y.numpy().tolist()
    (TensorShape([3, 8]), [[5, 5], [0, 0], [0, 0]])
    """

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 256,
        stride: int = DEFAULT_STRIDE,
        max_question_length: int | None = None,
        pad_to_sequence_length: bool = False,
        **kwargs,
    ):
        super().__init__(tokenizer, sequence_length, pad_to_sequence_length, **kwargs)
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"`stride` must be a positive int; got {stride!r}.")
        if max_question_length is None:
            max_question_length = max(1, min(64, sequence_length // 3))
        room = sequence_length - 4  # [cls] q [sep] (one context token) [sep]
        if (
            not isinstance(max_question_length, int)
            or isinstance(max_question_length, bool)
            or not 1 <= max_question_length <= room
        ):
            raise ValueError(
                f"`max_question_length` must be an int in [1, {room}] (`sequence_length` "
                f"{sequence_length} minus 3 framing tokens and one context token); got "
                f"{max_question_length!r}."
            )
        self.stride = stride
        self.max_question_length = max_question_length

    # ------------------------------------------------------------------ windows
    @staticmethod
    def _pairs(x) -> tuple[tf.Tensor, tf.Tensor, bool]:
        if not isinstance(x, tuple) or len(x) != 2:
            raise ValueError(
                "`x` must be a tuple `(questions, contexts)` of two batches of strings; got "
                f"{type(x).__name__}."
            )
        questions = as_strings(x[0], "x[0] (questions)")
        contexts = as_strings(x[1], "x[1] (contexts)")
        scalar = questions.shape.rank == 0
        if (contexts.shape.rank == 0) != scalar:
            raise ValueError("Questions and contexts must both be strings or both be batches.")
        if scalar:
            questions, contexts = questions[None], contexts[None]
        tf.debugging.assert_equal(
            tf.shape(questions)[0],
            tf.shape(contexts)[0],
            message="`x[0]` (questions) and `x[1]` (contexts) must hold as many texts",
        )
        return questions, contexts, scalar

    def encode(self, x) -> dict[str, tf.Tensor]:
        """The windows of a batch `(questions, contexts)` with what post-processing needs.

        Returns:
            `{"token_ids", "padding_mask", "segment_ids"}` int32 (N, L) (the model inputs),
            `"example_index"` int32 (N,): the pair each window belongs to (ascending),
            `"token_start"`, `"token_end"` int64 (N, L): each context token's byte offsets
            into its context (-1 on the question, framing and padding), and `"contexts"`
            (B,): the contexts as offsets refer to them (invalid UTF-8 replaced by U+FFFD).
        """
        questions, contexts, _ = self._pairs(x)
        return self._encode(questions, contexts)

    def _encode(self, questions: tf.Tensor, contexts: tf.Tensor) -> dict[str, tf.Tensor]:
        tokenizer = self._require_tokenizer()
        first, last = boundary_ids(tokenizer)
        framing = (first is not None) + 2 * (last is not None)
        contexts = _utf8(contexts)
        question_ids = self.tokenize(questions)[:, : self.max_question_length]
        context = context_tokens(tokenizer, contexts)
        batch = tf.shape(contexts, out_type=tf.int64)[0]

        question_length = question_ids.row_lengths()
        body = self.sequence_length - framing - question_length  # >= 1 (constructor)
        context_length = context["token_ids"].row_lengths()
        step = tf.minimum(tf.constant(self.stride, tf.int64), body)
        extra = tf.maximum(context_length - body, 0)
        windows = 1 + (extra + step - 1) // step
        example = tf.repeat(tf.range(batch), windows)
        window_starts = tf.ragged.range(windows).flat_values * tf.gather(step, example)
        lengths = tf.minimum(
            tf.gather(body, example), tf.gather(context_length, example) - window_starts
        )
        first_token = tf.gather(context["token_ids"].row_splits[:-1], example) + window_starts
        positions = tf.ragged.range(first_token, first_token + tf.maximum(lengths, 0))

        def window(values: tf.RaggedTensor) -> tf.RaggedTensor:
            return tf.gather(values.flat_values, positions)

        question_rows = tf.gather(question_ids, example)
        inputs = pack_segments(
            [question_rows, window(context["token_ids"])],
            self.sequence_length,
            first,
            last,
            truncate="waterfall",
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        # Offsets laid out as the framing lays out the tokens: -1 before the context window
        # (`[cls] question [sep]`), the window's offsets, then -1 on `[sep]` and padding.
        prefix = (first is not None) + question_rows.row_lengths() + (last is not None)
        blank = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(prefix)], tf.constant(-1, tf.int64)), prefix
        )
        shape = tf.shape(inputs["token_ids"], out_type=tf.int64)

        def offsets(values: tf.RaggedTensor) -> tf.Tensor:
            return tf.concat([blank, window(values)], axis=1).to_tensor(-1, shape=shape)

        return {
            **inputs,
            "example_index": tf.cast(example, tf.int32),
            "token_start": offsets(context["start"]),
            "token_end": offsets(context["end"]),
            "contexts": contexts,
        }

    def call(self, x, y=None, sample_weight=None):
        questions, contexts, scalar = self._pairs(x)
        encoded = self._encode(questions, contexts)
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        labels = None
        if y is not None:
            labels = self._labels(encoded, y)
        if sample_weight is not None:
            weights = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
            sample_weight = tf.gather(weights, encoded["example_index"])
        # One pair (two strings) gives its windows as a batch too: a context may need several.
        del scalar
        return keras.utils.pack_x_y_sample_weight(inputs, labels, sample_weight)

    @staticmethod
    def _labels(encoded: dict, y) -> tf.Tensor:
        """(N, 2) int32: the answer's first and last token in each window, [0, 0] where the
        window does not hold the whole answer (or the pair has none)."""
        y = tf.convert_to_tensor(y)
        if isinstance(y, tf.RaggedTensor) or y.shape.rank != 2 or y.shape[-1] != 2:
            raise ValueError(
                "`y` must hold each answer's character offsets [start, end) into its context, "
                f"shape (batch, 2); got shape {y.shape}."
            )
        y = tf.cast(y, tf.int64)
        contexts = encoded["contexts"]
        answered = (y[:, 0] >= 0) & (y[:, 1] > y[:, 0])
        start = char_to_byte_offsets(contexts, y[:, 0])
        end = char_to_byte_offsets(contexts, y[:, 1])
        example = encoded["example_index"]
        start, end, answered = (tf.gather(t, example) for t in (start, end, answered))
        token_start, token_end = encoded["token_start"], encoded["token_end"]
        in_context = token_start >= 0
        overlap = in_context & (token_end > start[:, None]) & (token_start < end[:, None])
        width = tf.shape(token_start)[1]
        positions = tf.range(width)[None, :]
        first = tf.reduce_min(tf.where(overlap, positions, width), axis=1)
        last = tf.reduce_max(tf.where(overlap, positions, -1), axis=1)
        big = tf.constant(2**62, tf.int64)
        window_start = tf.reduce_min(tf.where(in_context, token_start, big), axis=1)
        window_end = tf.reduce_max(tf.where(in_context, token_end, -1), axis=1)
        inside = (
            answered
            & tf.reduce_any(overlap, axis=1)
            & (window_start <= start)
            & (window_end >= end)
        )
        return tf.cast(
            tf.stack([tf.where(inside, first, 0), tf.where(inside, last, 0)], 1), tf.int32
        )

    # ------------------------------------------------------------------ predict hooks
    def predict_inputs(self, x):
        """`(inputs, context)` for `Task.predict` on text: the windows and what `best_spans`
        needs to map them back to the pairs."""
        questions, contexts, _ = self._pairs(x)
        encoded = self._encode(questions, contexts)
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        context = {k: encoded[k] for k in ("example_index", "token_start", "token_end")}
        context["contexts"] = encoded["contexts"]
        return inputs, context

    def predict_outputs(self, logits, context) -> dict[str, tf.Tensor]:
        """The best answer of each pair (see `best_spans`, one candidate): `"start"`, `"end"`
        character offsets into the context (-1 without an answer) and `"score"`."""
        spans = best_spans(logits, {**context}, n_best=1)
        return {key: spans[key][:, 0] for key in ("start", "end", "score")}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "stride": self.stride,
            "max_question_length": self.max_question_length,
        }


def best_spans(
    logits: tf.Tensor,
    encoded: dict[str, tf.Tensor],
    max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
    n_best: int = 1,
) -> dict[str, tf.Tensor]:
    """The `n_best` answers of each pair from the span logits of its windows.

    In each window a span runs from a context token i to a context token j >= i, at most
    `max_answer_length` tokens long, with score p_start(i) * p_end(j) (softmax over the
    window's real tokens, as BERT's `run_squad.py` and Hugging Face's QA pipeline score
    spans); a pair's answers are its windows' best spans, best first. A span covers whole
    context words and is sliced from the context, so no answer lies outside it. A pair without
    any context token (an empty context) gets answer "" with score 0 and offsets -1.

    Args:
        logits: float (N, L, 2), start and end logits of each window.
        encoded: `QuestionAnswererPreprocessor.encode`'s output for those windows (at least
            `example_index`, `token_start`, `token_end`, `contexts`; `padding_mask` if there).
        max_answer_length: most tokens of an answer.
        n_best: answers per pair.

    Returns:
        `{"answer": string (B, n_best), "score": float32 (B, n_best), "start", "end": int32
        (B, n_best) character offsets [start, end) into the context}`.
    """
    if not isinstance(n_best, int) or n_best < 1:
        raise ValueError(f"`n_best` must be a positive int; got {n_best!r}.")
    if not isinstance(max_answer_length, int) or max_answer_length < 1:
        raise ValueError(f"`max_answer_length` must be a positive int; got {max_answer_length!r}.")
    logits = tf.cast(logits, tf.float32)
    token_start, token_end = encoded["token_start"], encoded["token_end"]
    contexts = encoded["contexts"]
    batch = tf.shape(contexts, out_type=tf.int64)[0]
    example = tf.cast(encoded["example_index"], tf.int64)
    real = encoded.get("padding_mask")
    real = tf.ones_like(token_start, tf.bool) if real is None else tf.cast(real, tf.bool)
    log_start = tf.nn.log_softmax(tf.where(real, logits[..., 0], _NEG), axis=-1)
    log_end = tf.nn.log_softmax(tf.where(real, logits[..., 1], _NEG), axis=-1)
    in_context = token_start >= 0
    width = tf.shape(token_start)[1]
    i = tf.range(width)[:, None]
    j = tf.range(width)[None, :]
    allowed = (j >= i) & (j - i < max_answer_length)
    valid = in_context[:, :, None] & in_context[:, None, :] & allowed[None]
    scores = tf.where(valid, log_start[:, :, None] + log_end[:, None, :], -float("inf"))
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    k = tf.minimum(n_best, tf.shape(flat)[1])
    window_scores, window_index = tf.math.top_k(flat, k=k)
    # Every window's candidates, gathered per pair (windows are in pair order).
    candidates = tf.cast(tf.size(window_scores), tf.int64)
    rows = tf.repeat(example, tf.cast(k, tf.int64))
    per_pair = tf.RaggedTensor.from_value_rowids(
        tf.reshape(window_scores, [-1]), rows, nrows=batch
    ).to_tensor(-float("inf"))
    ids = tf.RaggedTensor.from_value_rowids(tf.range(candidates), rows, nrows=batch).to_tensor(-1)
    padding = tf.fill(tf.stack([batch, tf.constant(n_best, tf.int64)]), -float("inf"))
    per_pair = tf.concat([per_pair, padding], axis=1)
    ids = tf.concat([ids, tf.cast(tf.fill(tf.shape(padding), -1), tf.int64)], axis=1)
    best, chosen = tf.math.top_k(per_pair, k=n_best)
    candidate = tf.gather(ids, chosen, batch_dims=1)  # (B, n_best), -1: none
    found = (candidate >= 0) & tf.math.is_finite(best)
    candidate = tf.maximum(candidate, 0)
    # Candidate c is window c // k, flat position window_index[c] = i * width + j.
    k64 = tf.cast(k, tf.int64)
    window = candidate // k64
    position = tf.gather(tf.reshape(window_index, [-1]), candidate)
    width64 = tf.cast(width, tf.int32)
    first, last = position // width64, position % width64
    safe_window = tf.minimum(window, tf.maximum(tf.cast(tf.shape(token_start)[0], tf.int64) - 1, 0))
    start_byte = tf.gather_nd(token_start, tf.stack([safe_window, tf.cast(first, tf.int64)], -1))
    end_byte = tf.gather_nd(token_end, tf.stack([safe_window, tf.cast(last, tf.int64)], -1))
    start_byte = tf.where(found, start_byte, 0)
    end_byte = tf.where(found, end_byte, 0)
    rows_contexts = tf.broadcast_to(contexts[:, None], tf.shape(start_byte))
    answer = tf.strings.substr(
        rows_contexts, tf.cast(start_byte, tf.int32), tf.cast(end_byte - start_byte, tf.int32)
    )
    return {
        "answer": tf.where(found, answer, ""),
        "score": tf.where(found, tf.exp(best), 0.0),
        "start": tf.where(found, byte_to_char_offsets(rows_contexts, start_byte), -1),
        "end": tf.where(found, byte_to_char_offsets(rows_contexts, end_byte), -1),
    }
