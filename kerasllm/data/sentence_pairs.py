"""Sentence pairs for BERT's next-sentence prediction (NSP), and the joint MLM + NSP pipeline.

From documents split into sentences, `sentence_pairs` builds BERT's pairs of segments: each
document is cut into chunks of consecutive sentences filling the sequence length; segment A is
the first sentences of a chunk, segment B either the rest of it (label 1, "IsNext") or a run of
sentences from *another* document (label 0, "NotNext"); half of the pairs (to one) are IsNext,
in a seeded random order. `next_sentence_dataset` measures the sentences in the tokenizer's
tokens, frames each pair as `[cls] A [sep] B [sep]` with segment ids 0/1 (`pack_segments`, the
longer side truncated first), masks it as `masked_lm_dataset` does (`mask_tokens`) and yields
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
from collections.abc import Callable, Sequence

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
# Sentences tokenized at once when `next_sentence_dataset` measures them.
_COUNT_BATCH = 4096

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


def _word_counts(sentences: list[str]) -> list[int]:
    """`sentence_pairs`' default length of a sentence: its white-space separated words."""
    return [len(s.split()) for s in sentences]


def _join(sentences: Sequence[str]) -> str:
    return " ".join(sentences)


def sentence_pairs(
    documents: Sequence[str] | Sequence[Sequence[str]],
    seed: int = 0,
    *,
    max_length: int = 125,
    short_sequence_probability: float = 0.1,
    count_tokens: Callable[[list[str]], Sequence[int]] | None = None,
) -> tuple[list[str], list[str], list[int]]:
    """Next-sentence-prediction pairs from documents, each segment a run of sentences (BERT's
    `create_instances_from_document`).

    Each document is cut, from its first sentence on, into chunks of consecutive sentences:
    a chunk takes two sentences, then more until its length reaches the target, `max_length`
    (or, with probability `short_sequence_probability`, a length drawn uniformly from
    `[2, max_length]`, so that the model also sees short inputs), or the document ends. Segment
    A is the chunk's first 1 to n - 1 sentences (a uniform cut). With probability 1/2, B is the
    rest of the chunk (label `IS_NEXT` = 1); otherwise (label `NOT_NEXT` = 0) B is a run of
    consecutive sentences of *another* document, starting at a sentence drawn uniformly from
    all the sentences of the other documents and running until A + B reach the target or that
    document ends, and the chunk's unused sentences start the next chunk. A document's last
    sentence left alone starts no pair. Pairs of the more frequent label are then dropped at
    random until the two labels' counts differ by at most one. The same documents and
    arguments give the same pairs.

    A pair can pass the target by up to one sentence (the last one added);
    `next_sentence_dataset` cuts such pairs to the sequence length (the longer side first).

    Args:
        documents: texts (split by `split_sentences`), or documents already split into lists
            of sentences.
        seed: seed of the chunk targets, cuts, labels and random sentences.
        max_length: the target length of A + B, in `count_tokens` units (default 125: a
            sequence of 128 less `[cls]` and two `[sep]`).
        short_sequence_probability: chance that a chunk's target is drawn from
            `[2, max_length]` instead (BERT's 0.1 by default).
        count_tokens: a function giving the length of each of a list of sentences (called
            once, on all of them); default: the number of white-space separated words.
            `next_sentence_dataset` counts the tokenizer's tokens.

    Returns:
        `(texts_a, texts_b, labels)`, one entry per pair, in document order; a segment's
        sentences are joined by a space.

    Raises:
        ValueError: no document has two sentences, all sentences are in one document (no
            random sentence could come from another document), or an argument is out of
            range.

    Example (lengths in words; "B one." is A of a NotNext pair, so "B two." starts the next):
    >>> docs = [[f"{d} {n}." for n in ("one", "two", "three", "four")] for d in "AB"]
    >>> for pair in zip(*sentence_pairs(docs, seed=3, max_length=6)):
    ...     print(pair)
    ('A one.', 'A two. A three.', 1)
    ('B one.', 'A four.', 0)
    ('B two.', 'B three. B four.', 1)
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"`max_length` must be an integer >= 2; got {max_length!r}.")
    if not 0.0 <= short_sequence_probability <= 1.0:
        raise ValueError(
            f"`short_sequence_probability` must be in [0, 1]; got {short_sequence_probability!r}."
        )
    docs = _as_documents(documents)
    if not any(len(sentences) >= 2 for sentences in docs):
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
    counted = list((count_tokens or _word_counts)(flat))
    if len(counted) != len(flat):
        raise ValueError(
            f"`count_tokens` gave {len(counted)} lengths for {len(flat)} sentences; it must "
            "give one per sentence."
        )
    lengths = [int(n) for n in counted]
    offsets = np.concatenate([[0], np.cumsum([len(sentences) for sentences in docs])])
    rng = random.Random(seed)
    texts_a, texts_b, labels = [], [], []
    for d, sentences in enumerate(docs):
        own = lengths[offsets[d] : offsets[d + 1]]
        i = 0
        while i < len(sentences) - 1:
            target = max_length
            if rng.random() < short_sequence_probability:
                target = rng.randint(2, max_length)
            end, total = i + 2, own[i] + own[i + 1]  # a chunk has at least two sentences
            while end < len(sentences) and total < target:
                total, end = total + own[end], end + 1
            cut = rng.randint(i + 1, end - 1)
            texts_a.append(_join(sentences[i:cut]))
            if rng.random() < 0.5:
                texts_b.append(_join(sentences[cut:end]))
                labels.append(IS_NEXT)
                i = end
                continue
            # Uniform over the sentences of other documents: draw among all but this
            # document's (a contiguous run of `owners`), skipping over it.
            k = rng.randrange(len(flat) - len(sentences))
            k = k if k < offsets[d] else k + len(sentences)
            stop, room = int(offsets[owners[k] + 1]), target - sum(own[i:cut])
            b_end, b_total = k + 1, lengths[k]
            while b_end < stop and b_total < room:
                b_total, b_end = b_total + lengths[b_end], b_end + 1
            texts_b.append(_join(flat[k:b_end]))
            labels.append(NOT_NEXT)
            i = cut  # BERT puts the chunk's unused sentences back: they start the next one
    # Balance the labels: drop random pairs of the more frequent one until the counts differ
    # by at most one (an odd number of pairs keeps one more of it).
    majority = IS_NEXT if labels.count(IS_NEXT) > labels.count(NOT_NEXT) else NOT_NEXT
    surplus = abs(labels.count(IS_NEXT) - labels.count(NOT_NEXT))
    majority_pairs = [j for j, y in enumerate(labels) if y == majority]
    drop = set(rng.sample(majority_pairs, max(surplus - 1, 0)))
    keep = [j for j in range(len(labels)) if j not in drop]
    return [texts_a[j] for j in keep], [texts_b[j] for j in keep], [labels[j] for j in keep]


def _token_counter(tokenizer: Tokenizer) -> Callable[[list[str]], list[int]]:
    """`sentence_pairs`' `count_tokens` in `tokenizer`'s tokens (tokenized in batches)."""

    def count(sentences: list[str]) -> list[int]:
        out: list[int] = []
        for start in range(0, len(sentences), _COUNT_BATCH):
            ids = tokenizer.tokenize(tf.constant(sentences[start : start + _COUNT_BATCH]))
            out.extend(ids.row_lengths().numpy().tolist())
        return out

    return count


def next_sentence_dataset(
    documents: Sequence[str] | Sequence[Sequence[str]],
    tokenizer: Tokenizer,
    sequence_length: int,
    batch_size: int,
    mask_rate: float = 0.15,
    max_predictions: int | None = None,
    whole_word_masking: bool = False,
    short_sequence_probability: float = 0.1,
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

    The pairs are `sentence_pairs(documents, seed, max_length=sequence_length - 3,
    short_sequence_probability=..., count_tokens=...)` with the sentences' lengths counted in
    `tokenizer`'s tokens, so A + B fill the sequence (fixed for the run); each is framed as
    `[cls] A [sep] B [sep]` by `pack_segments` (segment ids 0 on `[cls] A [sep]`, 1 on
    `B [sep]`; a pair longer than `sequence_length` loses tokens from its longer side first),
    then masked like `masked_lm_dataset` (fresh masks every epoch, seeded by `seed` and the
    batch index). Framing tokens are never masked.

    Args:
        documents: texts or lists of sentences (see `sentence_pairs`).
        tokenizer: a tokenizer with a mask token (cls/sep, else start/end frame the pair).
        short_sequence_probability: chance that a chunk's target length is drawn from
            `[2, sequence_length - 3]` rather than the full length (BERT's 0.1; see
            `sentence_pairs`).
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
    >>> ds, _ = next_sentence_dataset(docs, tok, 16, 2, seed=2)
    >>> x, y, w = next(iter(ds))
    >>> sorted(y), x["segment_ids"].shape, sorted(y["next_sentence_label"].numpy().tolist())
    (['mask_ids', 'next_sentence_label'], TensorShape([2, 16]), [0, 1])
    """
    max_predictions, num_shards, shard_index, batch_size = _masked_lm_args(
        tokenizer, sequence_length, batch_size, mask_rate, max_predictions, input_context,
        num_shards, shard_index,
    )  # fmt: skip
    stats = PipelineStats()
    first, last = boundary_ids(tokenizer)
    body = body_length(sequence_length, 2, first, last)  # a clear error before any data is read
    texts_a, texts_b, labels = sentence_pairs(
        documents,
        0 if seed is None else seed,
        max_length=max(body, 2),
        short_sequence_probability=short_sequence_probability,
        count_tokens=_token_counter(tokenizer),
    )
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
