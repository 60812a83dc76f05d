"""Trainers: learn a WordPiece, SentencePiece or byte-level BPE vocabulary from texts."""

from __future__ import annotations

import collections
import heapq
import io
from collections.abc import Iterable, Sequence

import sentencepiece as spm
import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from kerasllm._compat import bytes_to_unicode, split_strings_for_bpe
from kerasllm.tokenizers import byte_bpe, sentencepiece, wordpiece
from kerasllm.tokenizers.base import as_text_list, unique_tokens, validate_special_tokens
from kerasllm.tokenizers.byte_bpe import ByteBPETokenizer
from kerasllm.tokenizers.sentencepiece import SentencePieceTokenizer
from kerasllm.tokenizers.typography import unify_typography as unify_typography_op
from kerasllm.tokenizers.wordpiece import WordPieceTokenizer

_BATCH = 1024


def _check_size(vocabulary_size: int, minimum: int, kind: str) -> None:
    if not isinstance(vocabulary_size, int) or vocabulary_size < minimum:
        raise ValueError(
            f"`vocabulary_size` for {kind} must be an int >= {minimum}. "
            f"Received: {vocabulary_size!r}"
        )


def _non_empty(texts: Iterable[str] | tf.data.Dataset, unify_typography: bool) -> list[str]:
    """The non-empty training texts, typography unified when the tokenizer will unify it (so
    the vocabulary is learned on the text the tokenizer will see)."""
    out = [t for t in as_text_list(texts) if t.strip()]
    if not out:
        raise ValueError("No non-empty training texts were given.")
    if not isinstance(unify_typography, bool):
        raise TypeError(f"`unify_typography` must be True or False; got {unify_typography!r}.")
    if unify_typography:
        unified = []
        for start in range(0, len(out), _BATCH):
            batch = unify_typography_op(tf.constant(out[start : start + _BATCH]))
            unified.extend(t.decode("utf-8", errors="replace") for t in batch.numpy())
        out = unified
    return out


def _with_typography(tokenizer, unify_typography: bool):
    tokenizer.unify_typography = unify_typography
    return tokenizer


def train_wordpiece(
    texts: Iterable[str] | tf.data.Dataset,
    vocabulary_size: int,
    lowercase: bool = True,
    strip_accents: bool = True,
    split_on_cjk: bool = True,
    suffix_indicator: str = "##",
    special_tokens: dict[str, str] | None = None,
    unify_typography: bool = True,
) -> WordPieceTokenizer:
    """Trains a BERT-style WordPiece vocabulary (tensorflow-text learner).

    Args:
        texts: training strings (a list, any iterable, or a `tf.data.Dataset` of strings).
        vocabulary_size: maximum vocabulary size, special tokens included.
        lowercase: lowercase the text before learning and tokenizing.
        strip_accents: strip accents before learning and tokenizing.
        split_on_cjk: make every CJK character its own word.
        suffix_indicator: prefix of word-continuation pieces.
        special_tokens: `{role: token}`; defaults to `[PAD]` 0, `[UNK]` 1, `[MASK]` 2,
            `[CLS]` 3, `[SEP]` 4 (ids follow the roles pad, unk, start, end, mask, cls, sep).
        unify_typography: map curly quotes, typographic dashes and spaces, the ellipsis and
            fullwidth forms to ASCII before learning and at every `tokenize` (the
            tokenizer's `unify_typography` option; see `kerasllm.tokenizers.typography`).

    Returns:
        A `WordPieceTokenizer`.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["Hello world", "hello there"] * 10, vocabulary_size=50)
    >>> tok.tokenize("Hello").numpy().tolist() == [tok.token_to_id("hello")]
    True
    """
    specials = validate_special_tokens(dict(special_tokens or wordpiece.DEFAULT_SPECIAL_TOKENS))
    reserved = unique_tokens(specials)
    _check_size(vocabulary_size, len(reserved) + 1, "WordPiece")
    # The tokenizer's own pre-tokenization feeds tensorflow-text's
    # WordPiece learner; searching thresholds from 1 to the top word count (instead of the
    # learner's 10 to 10M default) is faster and keeps rare words of small corpora.
    words = (
        tf.data.Dataset.from_tensor_slices(_non_empty(texts, unify_typography))
        .batch(_BATCH)
        .map(lambda t: wordpiece.pretokenize_words(t, lowercase, strip_accents, split_on_cjk))
    )
    word_counts = learner.count_words(words)
    vocab = learner.learn(
        word_counts,
        vocab_size=vocabulary_size,
        reserved_tokens=reserved,
        upper_thresh=max(word_counts.values()) + 1,
        lower_thresh=1,
        include_joiner_token=True,
        joiner=suffix_indicator,
    )[:vocabulary_size]
    tokenizer = WordPieceTokenizer(
        vocab,
        lowercase=lowercase,
        strip_accents=strip_accents,
        split_on_cjk=split_on_cjk,
        suffix_indicator=suffix_indicator,
        special_tokens=specials,
    )
    return _with_typography(tokenizer, unify_typography)


def train_sentencepiece(
    texts: Iterable[str] | tf.data.Dataset,
    vocabulary_size: int,
    model_type: str = "unigram",
    special_tokens: dict[str, str] | None = None,
    byte_fallback: bool = True,
    character_coverage: float = 0.9995,
    max_sentence_length: int = 1 << 16,
    num_threads: int = 2,
    unify_typography: bool = True,
    extra_tokens: Sequence[str] = (),
) -> SentencePieceTokenizer:
    """Trains a SentencePiece model (unigram or BPE) with the `sentencepiece` trainer.

    Args:
        texts: training strings (each is one SentencePiece "sentence").
        vocabulary_size: target vocabulary size (an upper bound: a small corpus may give
            fewer pieces).
        model_type: `"unigram"` or `"bpe"`.
        special_tokens: `{role: token}`; must include `pad` (id 0) and `unk` (id 1); the
            other roles become user-defined symbols (ids 2...). Defaults to `<pad> <unk>
            <s> </s> <mask> <cls> <sep>`.
        byte_fallback: encode characters outside the vocabulary as UTF-8 byte pieces
            (adds 256 pieces) so that no text maps to `<unk>`.
        character_coverage: fraction of characters covered by single-character pieces.
        max_sentence_length: longest training text in bytes (longer ones are skipped by
            the trainer).
        num_threads: trainer threads.
        unify_typography: map typographic punctuation to ASCII before learning and at every
            `tokenize` (as for `train_wordpiece`).
        extra_tokens: more reserved pieces, after the special tokens (e.g. the span
            corruption sentinels, `kerasllm.tokenizers.sentinel_tokens(100)`); each is one id
            and is never split.

    Returns:
        A `SentencePieceTokenizer`.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_sentencepiece(["a rose is a rose"] * 20, 280, model_type="bpe")
    >>> tok.pad_id, tok.unk_id, tok.start_id, tok.end_id
    (0, 1, 2, 3)
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"`model_type` must be 'unigram' or 'bpe'. Received: {model_type!r}")
    specials = validate_special_tokens(dict(special_tokens or sentencepiece.DEFAULT_SPECIAL_TOKENS))
    if "unk" not in specials:
        raise ValueError("SentencePiece needs an 'unk' special token.")
    user_defined = [
        t for t in unique_tokens(specials) if t not in (specials["pad"], specials["unk"])
    ]
    extra = [t for t in extra_tokens if t not in user_defined]
    for token in extra:
        if not isinstance(token, str) or not token or token != token.strip():
            raise ValueError(f"`extra_tokens` must be non-empty strings; got {token!r}.")
    user_defined += list(dict.fromkeys(extra))
    minimum = 2 + len(user_defined) + (256 if byte_fallback else 0) + 1
    _check_size(vocabulary_size, minimum, "SentencePiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_non_empty(texts, unify_typography)),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        pad_id=0,
        pad_piece=specials["pad"],
        unk_id=1,
        unk_piece=specials["unk"],
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=user_defined,
        byte_fallback=byte_fallback,
        character_coverage=character_coverage,
        max_sentence_length=max_sentence_length,
        hard_vocab_limit=False,
        num_threads=num_threads,
        minloglevel=2,
    )
    tokenizer = SentencePieceTokenizer(model.getvalue(), special_tokens=specials)
    return _with_typography(tokenizer, unify_typography)


def _pretokenize_for_bpe(texts: list[str], specials: list[str], add_prefix_space: bool):
    """Counts the GPT-2 pre-tokenized words with the same TF ops the tokenizer uses."""
    counts: collections.Counter[bytes] = collections.Counter()
    special_set = {t.encode("utf-8") for t in specials}
    for start in range(0, len(texts), _BATCH):
        batch = texts[start : start + _BATCH]
        if add_prefix_space:
            batch = [" " + t for t in batch]
        words = split_strings_for_bpe(tf.constant(batch), specials or None)
        counts.update(w for w in words.flat_values.numpy().tolist() if w not in special_set)
    return counts


def _learn_merges(word_counts: dict[tuple[str, ...], int], num_merges: int, min_frequency: int):
    """Classic BPE merge learning with incremental pair counts (deterministic ties)."""
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: collections.Counter[tuple[str, str]] = collections.Counter()
    where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for i, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += f
            where[pair].add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < num_merges:
        neg, pair = heapq.heappop(heap)
        if -neg != pair_counts.get(pair, 0):
            continue  # stale entry
        if -neg < min_frequency:
            break
        merges.append(pair)
        a, b = pair
        merged = a + b
        touched = set()
        for i in sorted(where.pop(pair, ())):
            w, f = words[i], freqs[i]
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                touched.add(p)
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(i)
                touched.add(p)
        for p in touched:
            if pair_counts[p] > 0 and p != pair:
                heapq.heappush(heap, (-pair_counts[p], p))
        pair_counts.pop(pair, None)
    return merges


def train_byte_bpe(
    texts: Iterable[str] | tf.data.Dataset,
    vocabulary_size: int,
    special_tokens: dict[str, str] | None = None,
    min_frequency: int = 2,
    add_prefix_space: bool = False,
    unify_typography: bool = False,
) -> ByteBPETokenizer:
    """Trains a GPT-2 style byte-level BPE vocabulary and merge list.

    The text is pre-split with the same TensorFlow ops the tokenizer uses at run time
    (keras_hub's GPT-2 pattern), then merges are learned over byte symbols.

    Args:
        texts: training strings.
        vocabulary_size: vocabulary size including the special tokens and the 256 bytes.
        special_tokens: `{role: token}`; defaults to `<|pad|>` (0), `<|startoftext|>`,
            `<|endoftext|>`, `<|mask|>`.
        min_frequency: stop merging when the best pair occurs fewer times than this.
        add_prefix_space: prepend a space to every text (also at tokenization).
        unify_typography: map typographic punctuation to ASCII before learning and at every
            `tokenize`. Off by default: byte-level BPE is lossless by design (GPT-2
            style), so it keeps every character unless asked.

    Returns:
        A `ByteBPETokenizer`.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_byte_bpe(["hug pug hugs"] * 10, vocabulary_size=265)
    >>> tok.vocabulary_size
    265
    """
    specials = validate_special_tokens(dict(special_tokens or byte_bpe.DEFAULT_SPECIAL_TOKENS))
    reserved = unique_tokens(specials)
    _check_size(vocabulary_size, len(reserved) + 256, "byte-level BPE")
    byte_list, symbols = bytes_to_unicode()
    byte_to_symbol = {b[0]: s for b, s in zip(byte_list, symbols)}
    counts = _pretokenize_for_bpe(_non_empty(texts, unify_typography), reserved, add_prefix_space)
    word_counts: dict[tuple[str, ...], int] = collections.defaultdict(int)
    for word, count in sorted(counts.items()):
        word_counts[tuple(byte_to_symbol[b] for b in word)] += count
    vocabulary = {token: i for i, token in enumerate(reserved)}
    for symbol in symbols:
        vocabulary.setdefault(symbol, len(vocabulary))
    num_merges = vocabulary_size - len(vocabulary)
    merges = _learn_merges(word_counts, num_merges, min_frequency)
    for a, b in merges:
        vocabulary.setdefault(a + b, len(vocabulary))
    tokenizer = ByteBPETokenizer(
        vocabulary,
        [f"{a} {b}" for a, b in merges],
        special_tokens=specials,
        add_prefix_space=add_prefix_space,
    )
    return _with_typography(tokenizer, unify_typography)
