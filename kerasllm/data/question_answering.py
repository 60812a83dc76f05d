"""The extractive question-answering training pipeline: (question, context, answer) triples to
batches of windows, framed by `QuestionAnswererPreprocessor` (the framing of `answer` and of
the exported signature)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kerasllm.preprocessors.question_answering import QuestionAnswererPreprocessor

_CHUNK = 256  # pairs framed per eager call while the windows are built


def question_answering_dataset(
    questions: Sequence[str],
    contexts: Sequence[str],
    answer_spans: Sequence[Sequence[int]],
    tokenizer,
    sequence_length: int,
    batch_size: int,
    *,
    stride: int = 128,
    max_question_length: int | None = None,
    unanswered_fraction: float = 1.0,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    pad_to_sequence_length: bool = True,
) -> tuple[tf.data.Dataset, dict]:
    """Batches `(x, y)` of QA windows: `x = {token_ids, padding_mask, segment_ids}` int32
    (B, L), `y` int32 (B, 2) the answer's first/last token in the window, `[0, 0]` (`[cls]`)
    in a window that does not hold the whole answer.

    The pairs are framed once, eagerly (a context may give several windows), and the windows
    become the examples that are shuffled and batched. `unanswered_fraction` keeps that share
    of the windows without the answer (a seeded draw; 1.0 keeps all, as BERT trains), which
    saves most of the compute on long contexts.

    Args:
        questions, contexts: lists of str.
        answer_spans: per pair `(start, end)` character offsets of the answer in its context.
        tokenizer: the model's tokenizer.
        sequence_length, stride, max_question_length: as `QuestionAnswererPreprocessor`.
        batch_size: windows per batch.
        unanswered_fraction: share of answer-less windows kept, in [0, 1].
        shuffle, seed, drop_remainder: shuffling (seeded) and batching.
        num_shards, shard_index: this worker's shard of the windows.
        pad_to_sequence_length: static (B, sequence_length) batches.

    Returns:
        `(dataset, stats)`, stats `{"pairs", "windows", "answered_windows"}`.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["who sat ? the cat sat on the mat ."] * 10, vocabulary_size=60)
    >>> ds, stats = question_answering_dataset(["who sat ?"], ["the cat sat on the mat ."],
    ...     [(4, 7)], tok, sequence_length=8, batch_size=4, stride=2, shuffle=False)
    >>> stats
    {'pairs': 1, 'windows': 3, 'answered_windows': 1}
    """
    if not len(questions) == len(contexts) == len(answer_spans):
        raise ValueError(
            f"{len(questions)} questions, {len(contexts)} contexts and {len(answer_spans)} "
            "answer spans: pass one of each per pair."
        )
    if not 0.0 <= unanswered_fraction <= 1.0:
        raise ValueError(f"`unanswered_fraction` must be in [0, 1]; got {unanswered_fraction}.")
    preprocessor = QuestionAnswererPreprocessor(
        tokenizer,
        sequence_length,
        stride=stride,
        max_question_length=max_question_length,
        pad_to_sequence_length=True,
    )
    spans = np.asarray(answer_spans, np.int64).reshape(-1, 2)
    parts: dict[str, list[np.ndarray]] = {}
    for begin in range(0, len(questions), _CHUNK):
        end = begin + _CHUNK
        x, y = preprocessor(
            (list(questions[begin:end]), list(contexts[begin:end])), spans[begin:end]
        )
        for key, value in {**x, "labels": y}.items():
            parts.setdefault(key, []).append(value.numpy())
    if parts:
        arrays = {key: np.concatenate(value) for key, value in parts.items()}
    else:
        names = ("token_ids", "padding_mask", "segment_ids")
        arrays = {k: np.zeros((0, sequence_length), np.int32) for k in names}
        arrays["labels"] = np.zeros((0, 2), np.int32)
    labels = arrays.pop("labels").astype(np.int32)
    answered = labels[:, 0] > 0
    keep = answered | (np.random.default_rng(seed).random(len(labels)) < unanswered_fraction)
    keep &= np.arange(len(labels)) % num_shards == shard_index
    inputs = {k: v[keep].astype(np.int32) for k, v in arrays.items()}
    stats = {
        "pairs": len(questions),
        "windows": int(keep.sum()),
        "answered_windows": int((answered & keep).sum()),
    }
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels[keep]))
    if shuffle:
        ds = ds.shuffle(max(int(keep.sum()), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if not pad_to_sequence_length:
        ds = ds.map(_trim_padding, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), stats


def _trim_padding(x, y):
    # Pad each batch to its longest window only (less compute on short contexts).
    width = tf.reduce_max(tf.reduce_sum(x["padding_mask"], axis=1))
    width = tf.maximum(width, 1)
    return {k: v[:, :width] for k, v in x.items()}, y


def qa_columns(examples) -> tuple[list[str], list[str], list[tuple[int, int]], list[list[str]]]:
    """`(questions, contexts, spans, answers)` columns of SQuAD-style examples: dicts (or
    objects, such as `kerasllm.datasets.ClozeExample`) with `question`, `context` and `answers`
    (a list of `{"text", "answer_start"}`, character offsets). `spans` holds the first gold
    answer's `(start, end)` (what training labels), `answers` every gold text (what exact match
    and F1 accept).

    Raises:
        ValueError: an example without an answer, or whose answer is not at its offset.

    >>> qa_columns([{"question": "who?", "context": "Ann ran.",
    ...              "answers": [{"text": "Ann", "answer_start": 0}]}])
    (['who?'], ['Ann ran.'], [(0, 3)], [['Ann']])
    """
    questions, contexts, spans, answers = [], [], [], []
    for number, example in enumerate(examples):

        def field(name, example=example):
            return example[name] if isinstance(example, dict) else getattr(example, name)

        question, context, golds = field("question"), field("context"), list(field("answers"))
        if not golds:
            raise ValueError(f"QA example {number} has no answer.")
        first = golds[0]
        start, text = int(first["answer_start"]), str(first["text"])
        if context[start : start + len(text)] != text:
            raise ValueError(
                f"QA example {number}: answer {text!r} is not at character {start} of its context."
            )
        questions.append(str(question))
        contexts.append(str(context))
        spans.append((start, start + len(text)))
        answers.append([str(g["text"]) for g in golds])
    return questions, contexts, spans, answers


def read_qa_jsonl(path: str):
    """Reads a JSON Lines file of SQuAD-style examples (one object per line with `question`,
    `context` and `answers`: `[{"text", "answer_start"}, ...]`) as `qa_columns`.

    Raises:
        ValueError: a line that is not such an object (naming the line).
    """
    import json

    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error}).") from None
            if not isinstance(value, dict) or not {"question", "context", "answers"} <= set(value):
                raise ValueError(
                    f'{path}:{number}: expected an object with "question", "context" and '
                    '"answers" ([{"text", "answer_start"}]).'
                )
            examples.append(value)
    try:
        return qa_columns(examples)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
