"""Sentence pairs for BERT's next-sentence prediction (NSP), and the joint MLM + NSP pipeline.

From documents split into sentences, `sentence_pairs` draws one pair per adjacent pair of
sentences in a document: sentence A, then either the sentence that follows it (label 1,
"IsNext") or a random sentence of *another* document (label 0, "NotNext"); exactly half of the
pairs (to one) take the real next sentence, in a seeded random order. `next_sentence_dataset`
frames each pair as `[cls] A [sep] B [sep]` with segment ids 0/1 (`pack_segments`, the longer
side truncated first), masks it as `masked_lm_dataset` does (`mask_tokens`) and yields
`(x, {"mask_ids", "next_sentence_label"}, mask_weights)`: what a `MaskedLM` with
`next_sentence_prediction=True` trains on with `objectives.MaskedLM(next_sentence_prediction=
True)`.

Sentences are split by `split_sentences`, a rule for English prose (a `.`, `!` or `?`, an
optional closing quote or bracket, white space, then an upper-case letter, a digit or an
opening quote), which leaves common abbreviations ("Mr.", "U.S.") alone.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kerasllm.data.pipelines import (
    _ENCODER_KEYS,
    _INT,
    _TOKENIZE_BATCH,
    AUTOTUNE,
    PipelineStats,
    _as_string_list,
    _batch,
    _finish,
    _masked_batches,
    _masked_lm_args,
    _source,
    _tokenize_columns,
    _unpadded_rows,
)
from kerasllm.preprocessors.packing import body_length, boundary_ids, pack_segments
from kerasllm.tokenizers.base import Tokenizer

#: Labels of `sentence_pairs` (BERT's convention: 1 when B follows A).
IS_NEXT, NOT_NEXT = 1, 0

# A sentence ends at [.!?], maybe a closing quote/bracket, then space before a capital, a digit
# or an opening quote. Group 1: the word before the end mark (checked against abbreviations).
_BOUNDARY = re.compile(r"(\S*?)([.!?][\"'”’)\]]*)\s+(?=[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    (
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "sen", "rep", "gov"),
        *("lt", "col", "sgt", "capt", "inc", "co", "corp", "ltd", "vs", "no", "fig"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    )
)


def split_sentences(text: str) -> list[str]:
    """Splits English prose into sentences (see the module docstring for the rule).

    Abbreviations such as "Mr." or "Dr." and initials ("U.S.", "J.") do not end a sentence.
    Blank text gives no sentence.

    Example:
    >>> split_sentences("Mr. Smith went to Washington. He met the U.S. president! Then? Home.")
    ['Mr. Smith went to Washington.', 'He met the U.S. president!', 'Then?', 'Home.']
    """
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        word = match.group(1).rstrip(".").lstrip("\"'“‘([")
        if match.group(2) == "." and (
            word.lower() in _ABBREVIATIONS
            or (len(word) == 1 and word.isalpha())
            or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word)
        ):
            continue  # "Mr.", "J.", "U.S.": not the end of a sentence
        sentences.append(text[start : match.end(2)].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _as_documents(documents) -> list[list[str]]:
    """Documents given as texts (split here) or as lists of sentences."""
    out = []
    for i, document in enumerate(documents):
        if isinstance(document, (str, bytes)):
            text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
            out.append(split_sentences(text))
        elif isinstance(document, Sequence) and all(isinstance(s, str) for s in document):
            out.append([s for s in document if s.strip()])
        else:
            raise ValueError(
                f"`documents[{i}]` must be a text or a list of sentence strings; got "
                f"{type(document).__name__}."
            )
    return out


def sentence_pairs(
    documents: Sequence[str] | Sequence[Sequence[str]],
    seed: int = 0,
) -> tuple[list[str], list[str], list[int]]:
    """Next-sentence-prediction pairs from documents.

    Every sentence of a document that has a next one starts a pair. Half of the pairs (the
    extra one of an odd count included, chosen at random) keep the real next sentence as B
    (label `IS_NEXT` = 1); the others take as B a sentence drawn uniformly from the sentences
    of the *other* documents (label `NOT_NEXT` = 0), never from A's own document. The same
    documents and `seed` give the same pairs.

    Args:
        documents: texts (split by `split_sentences`), or documents already split into lists
            of sentences.
        seed: seed of the labels' order and of the random sentences.

    Returns:
        `(texts_a, texts_b, labels)`, one entry per pair, in document order.

    Raises:
        ValueError: no document has two sentences, or all sentences are in one document (no
            random sentence could come from another document).

    Example:
    >>> a, b, labels = sentence_pairs([["A one.", "A two.", "A three."], ["B one.", "B two."]])
    >>> len(a), sorted(labels)
    (3, [0, 1, 1])
    >>> all(y == 1 or b_text.startswith("B") != a_text.startswith("B")
    ...     for a_text, b_text, y in zip(a, b, labels))
    True
    """
    docs = _as_documents(documents)
    starts = [(d, i) for d, sentences in enumerate(docs) for i in range(len(sentences) - 1)]
    if not starts:
        raise ValueError(
            "Next-sentence pairs need a document with at least two sentences; none of the "
            f"{len(docs)} documents has."
        )
    # Sentences of all documents, with the document each belongs to, for random B sentences.
    owners = np.asarray([d for d, sentences in enumerate(docs) for _ in sentences], np.int64)
    flat = [s for sentences in docs for s in sentences]
    if len(set(owners.tolist())) < 2:
        raise ValueError(
            "Next-sentence pairs need sentences in at least two documents (a random B sentence "
            "always comes from another document than A); all sentences are in one document."
        )
    rng = random.Random(seed)
    labels = [IS_NEXT] * ((len(starts) + 1) // 2) + [NOT_NEXT] * (len(starts) // 2)
    rng.shuffle(labels)
    texts_a, texts_b = [], []
    for (d, i), label in zip(starts, labels):
        texts_a.append(docs[d][i])
        if label == IS_NEXT:
            texts_b.append(docs[d][i + 1])
            continue
        # Uniform over the sentences of other documents: draw among all but this document's
        # (a contiguous run of `owners`), skipping over it.
        first = int(np.searchsorted(owners, d, "left"))
        own = int(np.searchsorted(owners, d, "right")) - first
        k = rng.randrange(len(flat) - own)
        texts_b.append(flat[k if k < first else k + own])
    return texts_a, texts_b, labels


def next_sentence_dataset(
    documents: Sequence[str] | Sequence[Sequence[str]],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    mask_rate: float = 0.15,
    max_predictions: int | None = None,
    whole_word_masking: bool = False,
    seed: int | None = None,
    shuffle: bool = True,
    repeat: bool = False,
    bucketing: bool | str = False,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
) -> tuple[tf.data.Dataset, PipelineStats]:
    """Masked-LM + next-sentence-prediction batches (BERT's pretraining) from documents.

    The pairs are `sentence_pairs(documents, seed)` (fixed for the run); each is framed as
    `[cls] A [sep] B [sep]` by `pack_segments` (segment ids 0 on `[cls] A [sep]`, 1 on
    `B [sep]`; a pair longer than `sequence_length` loses tokens from its longer side first),
    then masked like `masked_lm_dataset` (fresh masks every epoch, seeded by `seed` and the
    batch index). Framing tokens are never masked.

    Args:
        documents: texts or lists of sentences (see `sentence_pairs`).
        tokenizer: a tokenizer with a mask token (cls/sep, else start/end frame the pair).
        sequence_length, batch_size, mask_rate, max_predictions, whole_word_masking, seed,
        shuffle, repeat, bucketing, bucket_boundaries, drop_remainder, input_context,
        num_shards, shard_index: as in `kerasllm.data.masked_lm_dataset` (`seed` also draws
        the pairs; None: 0 for the pairs, a random seed for shuffling and masks).

    Returns:
        `(dataset, stats)`: batches `({token_ids, padding_mask, segment_ids, mask_positions},
        {"mask_ids" (B, P), "next_sentence_label" (B,)}, mask_weights (B, P))`.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> docs = ["The cat sat. It purred. Then it slept.", "Rain fell. The river rose."]
    >>> tok = kt.train_wordpiece(docs * 10, vocabulary_size=60)
    >>> ds, _ = next_sentence_dataset(docs, tok, 16, 3, seed=0)
    >>> x, y, w = next(iter(ds))
    >>> sorted(y), x["segment_ids"].shape, y["next_sentence_label"].shape
    (['mask_ids', 'next_sentence_label'], TensorShape([3, 16]), TensorShape([3]))
    """
    max_predictions, num_shards, shard_index, batch_size = _masked_lm_args(
        tokenizer, sequence_length, batch_size, mask_rate, max_predictions, input_context,
        num_shards, shard_index,
    )  # fmt: skip
    texts_a, texts_b, labels = sentence_pairs(documents, 0 if seed is None else seed)
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = body_length(sequence_length, 2, first, last)  # a clear error before any data is read
    columns = (_as_string_list(texts_a), _as_string_list(texts_b), labels)
    ds = _source(columns, num_shards, shard_index, shuffle, seed, repeat)
    ds = _tokenize_columns(ds, {0: tokenizer, 1: tokenizer}, stats)

    def frame(ids_a, ids_b, label):
        # In batches, then back to one unpadded example per element (as classification).
        cut = ids_a.row_lengths() + ids_b.row_lengths() > body
        with tf.control_dependencies([stats.add("truncated", tf.reduce_sum(tf.cast(cut, _INT)))]):
            x = pack_segments([ids_a, ids_b], sequence_length, first, last)
        return {**_unpadded_rows(x, _ENCODER_KEYS), "labels": tf.cast(label, _INT)}

    ds = ds.ragged_batch(_TOKENIZE_BATCH).map(frame, num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch().map(lambda example: example)
    ds = _batch(
        ds, batch_size, sequence_length, "token_ids", bucketing, bucket_boundaries, drop_remainder
    )
    ds = _masked_batches(
        ds, tokenizer, max_predictions, mask_rate, whole_word_masking, seed, stats,
        targets={"next_sentence_label": "labels"},
    )  # fmt: skip
    return _finish(ds), stats
