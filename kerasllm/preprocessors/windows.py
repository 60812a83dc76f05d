"""Inputs longer than the model: overlapping token windows and the rules that merge their
results, one implementation for classification and tagging (instead of silent truncation).

A text's tokens (for a tagger: its words' sub-words, laid out as `encode_words` lays them) are
cut into windows of `size` tokens, the most one framed row holds (`sequence_length` minus
`[cls]`/`[sep]`), whose starts are `stride` tokens apart (the distance between window starts,
as BERT's `doc_stride`; windows overlap by `size - stride` tokens), the last window ending at
the text's last token. Every window is framed by `pack_segments`, as any other input, and run
through the model; then:

- **classification** (`merge_classification`): the text's class probabilities are the **mean**
  of its windows' probabilities. The mean, not the max: a label such as a review's sentiment is
  a property of the whole text, so every part of it votes, and one confident window does not
  overrule the rest (the max suits "does any part contain X" questions, which is not what a
  sequence classifier was trained on). The result is returned as log-probabilities, which are
  valid logits: their softmax is the mean.
- **tagging** (`merge_tagging`): each word takes the logits of its first sub-word in the window
  where that sub-word has the most context, `min(tokens left of it, tokens right of it)` in the
  window (ties: the longer window, then the earlier one), as BERT's `_check_is_max_context`
  picks the window of a token for question answering.

The functions here run eagerly (numpy and TensorFlow ops): windows are built per batch in
Python, so the exported SavedModel signatures keep truncating to `sequence_length`.

Example:
>>> window_spans(10, size=4, stride=3)
[(0, 4), (3, 7), (6, 10)]
>>> best_window([(0, 4), (3, 7), (6, 10)], 4)
1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm.preprocessors.packing import body_length, boundary_ids, pack_segments
from kerasllm.preprocessors.preprocessor import as_strings
from kerasllm.preprocessors.token_classifier import TokenClassifierPreprocessor
from kerasllm.preprocessors.words import encode_words


def window_spans(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Windows `[start, end)` over `length` tokens: at most `size` tokens each, starts `stride`
    apart, until one reaches the end (so every token is in at least one window). Zero tokens
    give one empty window (the text still gets a result).

    Raises:
        ValueError: `size` or `stride` is not positive, or `stride > size` (tokens between
            windows would be skipped).

    Example:
    >>> window_spans(3, size=4, stride=2), window_spans(0, size=4, stride=2)
    ([(0, 3)], [(0, 0)])
    """
    check_stride(stride, size)
    if length < 0:
        raise ValueError(f"`length` must be >= 0; got {length}.")
    spans = []
    start = 0
    while True:
        end = min(start + size, length)
        spans.append((start, end))
        if end >= length:
            return spans
        start += stride


def check_stride(stride: int, size: int) -> int:
    """`stride`, checked against the window `size` (tokens per window).

    Raises:
        ValueError: naming `stride`, when it is not an integer in [1, size].
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"The window size must be a positive integer; got {size!r}.")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"`stride` must be a positive integer; got {stride!r}.")
    if stride > size:
        raise ValueError(
            f"`stride` {stride} is larger than the window ({size} tokens): the tokens between "
            "windows would never be seen. Use a stride <= the window size."
        )
    return int(stride)


def best_window(spans: Sequence[tuple[int, int]], position: int) -> int:
    """The index of the window (of `spans`) where token `position` has the most context:
    the largest `min(left, right) + 0.01 * window length` (BERT's rule; the first on ties).

    Raises:
        ValueError: no window contains `position`.

    Example:
    >>> best_window([(0, 4), (2, 6)], 2)  # 2 left of it in the first, 0 in the second
    0
    """
    best, best_score = -1, -1.0
    for index, (start, end) in enumerate(spans):
        if not start <= position < end:
            continue
        score = min(position - start, end - 1 - position) + 0.01 * (end - start)
        if score > best_score:
            best, best_score = index, score
    if best < 0:
        raise ValueError(f"No window contains token {position}; windows: {list(spans)}.")
    return best


@dataclasses.dataclass
class Windows:
    """Framed windows of a batch of texts and how to merge their outputs.

    Attributes:
        inputs: `{"token_ids", "padding_mask", "segment_ids"}` int32 numpy (N, L), one row per
            window (`pack_segments`' framing).
        owner: int (N,): the text each window belongs to.
        count: the number of texts.
        words: tagging only, per text an int array (W_i, 2) of (window row, position in the
            row) of each word's first sub-word, (-1, -1) for a word that yields no token.
    """

    inputs: dict[str, np.ndarray]
    owner: np.ndarray
    count: int
    words: list[np.ndarray] | None = None


def _frame(preprocessor, bodies: list[list[int]], owner: list[int], count: int) -> Windows:
    first, last = boundary_ids(preprocessor.tokenizer)
    ragged = tf.ragged.constant(bodies, dtype=tf.int32, ragged_rank=1, inner_shape=())
    if not bodies:
        ragged = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    packed = pack_segments([ragged], preprocessor.sequence_length, first, last)
    inputs = {key: np.asarray(value) for key, value in packed.items()}
    return Windows(inputs, np.asarray(owner, np.int64), count)


def window_size(preprocessor) -> int:
    """Tokens of text per window: the preprocessor's `sequence_length` minus the framing."""
    return body_length(preprocessor.sequence_length, 1, *boundary_ids(preprocessor.tokenizer))


def text_windows(preprocessor, texts: Any, stride: int) -> Windows:
    """Windows of single texts for a `TextClassifierPreprocessor` (tokenized as it tokenizes).

    Raises:
        ValueError: `texts` is a tuple (sentence pairs are not windowed), or a bad `stride`.
    """
    if isinstance(texts, tuple):
        raise ValueError(
            "`stride` windows single texts; sentence pairs are truncated as the preprocessor's "
            "`truncate` says."
        )
    strings = as_strings(texts, "x")
    strings = strings[None] if strings.shape.rank == 0 else strings
    size = window_size(preprocessor)
    check_stride(stride, size)
    ids = preprocessor.tokenize(strings).to_list() if strings.shape[0] else []
    bodies, owner = [], []
    for index, row in enumerate(ids):
        for start, end in window_spans(len(row), size, stride):
            bodies.append(row[start:end])
            owner.append(index)
    return _frame(preprocessor, bodies, owner, len(ids))


def word_windows(preprocessor, x: Any, stride: int) -> Windows:
    """Windows of texts or word lists for a `TokenClassifierPreprocessor`: the words'
    sub-words as `encode_words` lays them out with no length limit, cut into windows; each
    word is read from the window where its first sub-word has the most context (`best_window`).
    """
    words = preprocessor.words(x)
    size = window_size(preprocessor)
    check_stride(stride, size)
    tokenizer = preprocessor.tokenizer
    first, last = boundary_ids(tokenizer)
    if words.shape[0] == 0:
        windows = _frame(preprocessor, [], [], 0)
        windows.words = []
        return windows
    # No truncation: room for every word's sub-words (a word yields at most its bytes).
    longest = int(tf.reduce_max(tf.reduce_sum(tf.strings.length(words) + 1, axis=1)))
    encoded = encode_words(tokenizer, words, max(longest, 1) + 2, first, last)
    offset = 1 if first is not None else 0
    token_ids = np.asarray(encoded["token_ids"])
    real = np.asarray(encoded["padding_mask"]).astype(bool)
    first_token = np.asarray(encoded["first_token"])
    classified = np.asarray(encoded["classified"])
    counts = np.asarray(words.row_lengths())
    bodies, owner, placements = [], [], []
    for index in range(token_ids.shape[0]):
        length = int(real[index].sum()) - offset - (last is not None)
        body = token_ids[index, offset : offset + max(length, 0)].tolist()
        if not any(classified[index]):
            body = []  # only the filler token: an empty window
        spans = window_spans(len(body), size, stride)
        base = len(bodies)
        for start, end in spans:
            bodies.append(body[start:end])
            owner.append(index)
        place = np.full((int(counts[index]), 2), -1, np.int64)
        for word in range(int(counts[index])):
            if not classified[index, word]:
                continue
            position = int(first_token[index, word]) - offset
            chosen = best_window(spans, position)
            place[word] = (base + chosen, position - spans[chosen][0] + offset)
        placements.append(place)
    windows = _frame(preprocessor, bodies, owner, token_ids.shape[0])
    windows.words = placements
    return windows


def run_windows(model: Callable[..., Any], windows: Windows, batch_size: int) -> np.ndarray:
    """The model's float32 outputs on every window, `batch_size` windows per call (numpy, (N,
    ...)); `model` is a Keras task model called with `training=False`."""
    rows = windows.owner.shape[0]
    outputs = []
    for start in range(0, rows, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in windows.inputs.items()}
        outputs.append(np.asarray(model(batch, training=False), np.float32))
    if not outputs:
        return np.zeros((0,), np.float32)
    return np.concatenate(outputs, axis=0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def merge_classification(logits: np.ndarray, windows: Windows) -> np.ndarray:
    """Per-text log of the mean of its windows' probabilities, float32 (B, C): logits whose
    softmax is that mean (see the module doc for why the mean)."""
    logits = np.asarray(logits, np.float64)
    if windows.count == 0:
        return np.zeros((0, logits.shape[-1] if logits.ndim == 2 else 0), np.float32)
    probabilities = np.exp(_log_softmax(logits))
    totals = np.zeros((windows.count, logits.shape[-1]))
    np.add.at(totals, windows.owner, probabilities)
    means = totals / np.bincount(windows.owner, minlength=windows.count)[:, None]
    return np.log(np.maximum(means, np.finfo(np.float64).tiny)).astype(np.float32)


def merge_tagging(logits: np.ndarray, windows: Windows) -> np.ndarray:
    """Per-word logits float32 (B, W, C), W the most words of a text: each word's from its
    first sub-word in its max-context window; NaN past a text's words and for words that
    yield no token."""
    if windows.words is None:
        raise ValueError("`windows` were not built for tagging (use `word_windows`).")
    classes = logits.shape[-1] if logits.ndim == 3 else 0
    width = max((len(place) for place in windows.words), default=0)
    out = np.full((windows.count, width, classes), np.nan, np.float32)
    for index, place in enumerate(windows.words):
        found = place[:, 0] >= 0
        if found.any():
            out[index, np.flatnonzero(found)] = logits[place[found, 0], place[found, 1]]
    return out


def predict_long(model, x: Any, stride: int, batch_size: int | None = None) -> np.ndarray:
    """`model.predict` on texts of any length: a `SequenceClassifier` gives (B, C) log mean
    probabilities, a `TokenClassifier` (B, W, C) per-word logits, W the most words of a text
    (see the module doc for the windows and the merge rules).

    Args:
        model: a task model with a `TextClassifierPreprocessor` or a
            `TokenClassifierPreprocessor` attached.
        x: texts (or, for a tagger, word lists), as the model's `predict` takes them.
        stride: tokens between window starts, 1 to the window size.
        batch_size: windows per model call (default 32).

    Raises:
        ValueError: the model has no preprocessor, or a bad `stride` / `batch_size`.
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            "`stride` needs a model with a preprocessor (windows are cut from its tokens)."
        )
    batch_size = 32 if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    if isinstance(preprocessor, TokenClassifierPreprocessor):
        windows = word_windows(preprocessor, x, stride)
        merge = merge_tagging
    else:
        windows = text_windows(preprocessor, x, stride)
        merge = merge_classification
    if windows.count == 0:
        # No text: the plain `predict` gives the empty result with the class axis.
        return model.predict(x, verbose=0)
    return merge(run_windows(model, windows, batch_size), windows)
