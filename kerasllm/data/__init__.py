"""`tf.data` pipelines for every training objective, and readers for your own text files.

Pipelines return `(dataset, stats)` with Keras-style `(x, y, sample_weight)` batches in the
formats of `docs/architecture.md`; they take any texts (lists of str). Ready-made corpora read
from optional data packages are in `kerasllm.datasets`.

Example:

>>> import kerasllm.data as kd, kerasllm.tokenizers as kt
>>> texts = ["a gripping, funny film", "dull and far too long"]
>>> tokenizer = kt.train_wordpiece(texts * 10, vocabulary_size=60)
>>> dataset, stats = kd.classification_dataset(texts, [1, 0], tokenizer, 8, 2)
>>> [batch[0]["token_ids"].shape for batch in dataset]
[TensorShape([2, 8])]
"""

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
from kerasllm.data.question_answering import (
    qa_columns,
    question_answering_dataset,
    read_qa_jsonl,
)
from kerasllm.data.readers import (
    csv_columns,
    read_conll,
    read_csv_labels,
    read_csv_pair_labels,
    read_lines,
    read_tsv_pairs,
)
from kerasllm.data.sentence_pairs import next_sentence_dataset, sentence_pairs, split_sentences
from kerasllm.data.span_corruption import (
    corrupt_spans,
    random_spans_noise_mask,
    span_corruption_dataset,
)

__all__ = [
    "qa_columns",
    "question_answering_dataset",
    "read_qa_jsonl",
    "PipelineStats",
    "boundary_ids",
    "causal_lm_dataset",
    "classification_dataset",
    "csv_columns",
    "corrupt_spans",
    "mask_tokens",
    "masked_lm_dataset",
    "next_sentence_dataset",
    "random_spans_noise_mask",
    "read_conll",
    "read_csv_labels",
    "read_csv_pair_labels",
    "read_lines",
    "read_tsv_pairs",
    "sentence_pairs",
    "seq2seq_dataset",
    "span_corruption_dataset",
    "split_sentences",
    "token_classification_dataset",
]
