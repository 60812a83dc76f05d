"""Training objectives: a loss and evaluation metrics per task, all replica-safe.

Every quantity an objective returns is a *sum* over the examples (or tokens) of one batch on one
replica, so replicas and batches add up exactly:

- `loss_sums(y, outputs, sample_weight)` returns one weighted loss sum per loss term, and
  `normalizers(y, sample_weight)` the matching weight sums (real tokens, masked positions,
  examples). The `Trainer` all-reduces the normalizers over replicas and accumulation steps and
  optimizes `sum_i loss_sum_i / global_normalizer_i`: the mean over every real token of the
  global batch, whatever the number of replicas.
- `metric_sums(...)` returns additive counters; `results(sums)` turns the totals into metrics.

Padding and unused mask slots have `sample_weight` 0 and so contribute nothing.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from kerasllm.utils.validation import closest


def cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """Per-position cross-entropy of integer `labels` under float32 `logits`, with optional label
    smoothing (the target puts `1 - label_smoothing` on the label and spreads `label_smoothing`
    uniformly over the whole vocabulary, as `keras.losses.CategoricalCrossentropy` does), without
    materializing one-hot targets.

    Returns:
        (loss, negative log-likelihood), both shaped like `labels`.

    Example:
    >>> import numpy as np
    >>> loss, nll = cross_entropy(np.array([0]), np.array([[0.0, 0.0]], "float32"), 0.1)
    >>> round(float(nll[0]), 4)
    0.6931
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if not label_smoothing:
        # One fused kernel for the softmax, the loss and its gradient: 15-25% less time than
        # log_softmax + gather over a (16, 128, 8000) batch, with or without XLA (measured).
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        return nll, nll
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    nll = -tf.gather(log_probs, labels, batch_dims=labels.shape.rank)
    smooth = -tf.reduce_mean(log_probs, axis=-1)
    return (1.0 - label_smoothing) * nll + label_smoothing * smooth, nll


def _weights(sample_weight, like):
    if sample_weight is None:
        return tf.ones(tf.shape(like), tf.float32)
    return tf.cast(sample_weight, tf.float32)


def _f1_from_confusion(confusion: np.ndarray, ignore_class: int | None = None) -> float:
    """Binary F1 of class 1 for two classes, else macro F1 over the classes that occur."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    if confusion.shape[0] == 2 and ignore_class is None:
        return float(f1[1])
    present = denominator > 0
    if ignore_class is not None:
        present[ignore_class] = False
    return float(f1[present].mean()) if present.any() else 0.0


class Objective:
    """Base class: token-level cross-entropy over `(x, y, sample_weight)` batches.

    Subclasses set `name` and `task` (the `kerasllm.zoo` task the model must be) and override
    what differs.

    Args:
        label_smoothing: label smoothing of the cross-entropy.
    """

    name = "objective"
    task: str | None = None

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1); got {label_smoothing!r}.")
        self.label_smoothing = label_smoothing

    # ---------------------------------------------------------------- training
    def normalizers(self, y, sample_weight) -> list:
        """Per-term weight sums of one batch (independent of the model's outputs)."""
        return [tf.reduce_sum(_weights(sample_weight, y))]

    def loss_sums(self, y, outputs, sample_weight) -> list:
        """Per-term weighted loss sums of one batch."""
        loss, _ = cross_entropy(y, outputs, self.label_smoothing)
        return [tf.reduce_sum(loss * _weights(sample_weight, y))]

    def count_tokens(self, x) -> tf.Tensor:
        """Real input tokens of a batch (the sum of every `*padding_mask`), for tokens/s."""
        if not isinstance(x, dict):
            return tf.cast(tf.size(x), tf.float32)
        masks = [tf.cast(v, tf.float32) for k, v in x.items() if k.endswith("padding_mask")]
        if not masks:
            return tf.cast(tf.size(next(iter(x.values()))), tf.float32)
        return tf.add_n([tf.reduce_sum(m) for m in masks])

    # -------------------------------------------------------------- evaluation
    def metric_sums(self, y, outputs, sample_weight) -> dict:
        """Additive evaluation counters of one batch."""
        weights = _weights(sample_weight, y)
        loss, nll = cross_entropy(y, outputs, self.label_smoothing)
        predicted = tf.argmax(outputs, -1, output_type=tf.int32)
        correct = tf.cast(tf.equal(predicted, tf.cast(y, tf.int32)), tf.float32)
        return {
            "loss": tf.reduce_sum(loss * weights),
            "nll": tf.reduce_sum(nll * weights),
            "correct": tf.reduce_sum(correct * weights),
            "weight": tf.reduce_sum(weights),
        }

    def results(self, sums: dict) -> dict:
        """Final metrics from the summed counters."""
        weight = max(float(sums["weight"]), 1e-12)
        nll = float(sums["nll"]) / weight
        return {
            "loss": float(sums["loss"]) / weight,
            "perplexity": math.exp(min(nll, 50.0)),
            "accuracy": float(sums["correct"]) / weight,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class CausalLM(Objective):
    """Next-token prediction: `y` (B, T) are the inputs shifted left, weight 0 on padding.

    Metrics: loss, perplexity (exp of the unsmoothed per-token NLL), token accuracy.
    """

    name = "causal_lm"
    task = "causal_lm"


class Seq2Seq(Objective):
    """Teacher-forced sequence-to-sequence cross-entropy, usually with label smoothing.

    `y` (B, T) are the target tokens plus the end token; perplexity uses the unsmoothed NLL.
    """

    name = "seq2seq"
    task = "seq2seq_lm"


class SpanCorruption(Seq2Seq):
    """T5-style span corruption pretraining (`kerasllm.data.span_corruption_dataset`): the
    `Seq2Seq` loss and metrics on batches whose encoder reads a text with dropped spans
    replaced by sentinel tokens and whose decoder writes the sentinels and the dropped spans.
    """

    name = "span_corruption"


class Denoising(Seq2Seq):
    """Denoising reconstruction pretraining (`kerasllm.data.span_corruption_dataset` with
    `target="original"`): the `Seq2Seq` loss and metrics on batches whose encoder reads a
    text with dropped spans replaced by sentinel tokens and whose decoder writes the whole
    original text (BART's text infilling with T5's spans): the decoder learns to copy and
    repair its source.
    """

    name = "denoising"


class MaskedLM(Objective):
    """Masked-token prediction at `mask_positions`, optionally with next-sentence prediction.

    Plain MLM: `outputs` (B, P, V) logits, `y` the original ids (B, P), `sample_weight` 0 on
    unused mask slots. With NSP the model returns `{"mlm": (B, P, V), "nsp": (B, 2)}` and `y` is
    `{"mask_ids": (B, P), "next_sentence_label": (B,)}`; the loss is the mean masked-token loss
    plus the mean NSP loss, as in BERT.

    Metrics: loss, perplexity and accuracy of the masked tokens (+ `nsp_accuracy`).

    Args:
        next_sentence_prediction: expect the NSP outputs and labels described above.
        label_smoothing: label smoothing of both cross-entropies.
    """

    name = "masked_lm"
    task = "masked_lm"

    def __init__(self, next_sentence_prediction: bool = False, label_smoothing: float = 0.0):
        super().__init__(label_smoothing)
        self.next_sentence_prediction = next_sentence_prediction

    def _split(self, y, outputs):
        if not self.next_sentence_prediction:
            return y, outputs, None, None
        if not (isinstance(y, dict) and isinstance(outputs, dict)):
            raise ValueError(
                "masked_lm with next_sentence_prediction=True needs model outputs "
                "{'mlm': ..., 'nsp': ...} and labels {'mask_ids': ..., 'next_sentence_label': ...}."
            )
        return y["mask_ids"], outputs["mlm"], y["next_sentence_label"], outputs["nsp"]

    def normalizers(self, y, sample_weight):
        mask_ids = y["mask_ids"] if self.next_sentence_prediction else y
        terms = [tf.reduce_sum(_weights(sample_weight, mask_ids))]
        if self.next_sentence_prediction:
            terms.append(tf.cast(tf.shape(y["next_sentence_label"])[0], tf.float32))
        return terms

    def loss_sums(self, y, outputs, sample_weight):
        mask_ids, mlm, nsp_labels, nsp = self._split(y, outputs)
        terms = super().loss_sums(mask_ids, mlm, sample_weight)
        if nsp is not None:
            loss, _ = cross_entropy(nsp_labels, nsp, self.label_smoothing)
            terms.append(tf.reduce_sum(loss))
        return terms

    def metric_sums(self, y, outputs, sample_weight):
        mask_ids, mlm, nsp_labels, nsp = self._split(y, outputs)
        sums = super().metric_sums(mask_ids, mlm, sample_weight)
        if nsp is not None:
            predicted = tf.argmax(nsp, -1, output_type=tf.int32)
            sums["nsp_correct"] = tf.reduce_sum(
                tf.cast(tf.equal(predicted, tf.cast(nsp_labels, tf.int32)), tf.float32)
            )
            sums["nsp_count"] = tf.cast(tf.shape(nsp_labels)[0], tf.float32)
        return sums

    def results(self, sums):
        out = super().results(sums)
        if "nsp_count" in sums:
            out["nsp_accuracy"] = float(sums["nsp_correct"]) / max(float(sums["nsp_count"]), 1.0)
        return out

    def __repr__(self):
        return (
            f"MaskedLM(next_sentence_prediction={self.next_sentence_prediction}, "
            f"label_smoothing={self.label_smoothing})"
        )


class _Classification(Objective):
    """Shared evaluation of the classification objectives: accuracy and F1 from a confusion
    matrix summed over replicas and batches."""

    f1_ignore_class: int | None = None

    def metric_sums(self, y, outputs, sample_weight):
        weights = _weights(sample_weight, y)
        loss, _ = cross_entropy(y, outputs, self.label_smoothing)
        num_classes = outputs.shape[-1]
        predicted = tf.argmax(outputs, -1, output_type=tf.int32)
        confusion = tf.math.confusion_matrix(
            tf.reshape(tf.cast(y, tf.int32), [-1]),
            tf.reshape(predicted, [-1]),
            num_classes=num_classes,
            weights=tf.reshape(weights, [-1]),
            dtype=tf.float32,
        )
        return {
            "loss": tf.reduce_sum(loss * weights),
            "weight": tf.reduce_sum(weights),
            "confusion": confusion,
        }

    def results(self, sums):
        confusion = np.asarray(sums["confusion"])
        weight = max(float(sums["weight"]), 1e-12)
        return {
            "loss": float(sums["loss"]) / weight,
            "accuracy": float(np.trace(confusion)) / weight,
            "f1": _f1_from_confusion(confusion, self.f1_ignore_class),
        }


class SequenceClassification(_Classification):
    """One label per sequence: `y` (B,) integer classes, `outputs` (B, C) logits.

    Metrics: loss, accuracy, F1 (of class 1 for two classes, macro F1 otherwise).
    """

    name = "classification"
    task = "classifier"


class TokenClassification(_Classification):
    """One label per token: `y` (B, T), `sample_weight` 1 on the first piece of each word.

    Metrics: loss, token accuracy and macro F1 over the labels other than `ignore_class`
    (the "O" tag, id 0, in the BIO sets of `kerasllm.data`); with BIO `label_names`, also the
    entity-level scores NER is reported with: `entity_precision`, `entity_recall`,
    `entity_f1` (exact span and type, micro-averaged, equal to `seqeval`'s; see
    `kerasllm.metrics.entities`). Each batch contributes per-type counts of correct,
    predicted and true entities, decoded from the words' tags (the positions with weight > 0,
    in order) as `seqeval` decodes BIO; counts add exactly over batches and replicas, where
    F1 does not.

    Args:
        ignore_class: label left out of the macro F1 (None keeps every label).
        label_smoothing: label smoothing of the cross-entropy.
        label_names: the tag of each class id ("O", "B-PER", "I-PER", ...); tags that are not
            all BIO give no entity scores (`recipe.run` passes the corpus's tags).
    """

    name = "token_classification"
    task = "token_classifier"

    def __init__(
        self,
        ignore_class: int | None = 0,
        label_smoothing: float = 0.0,
        label_names: list[str] | None = None,
    ):
        super().__init__(label_smoothing)
        self.f1_ignore_class = ignore_class
        self.label_names = label_names

    @property
    def label_names(self) -> list[str] | None:
        return self._label_names

    @label_names.setter
    def label_names(self, names) -> None:
        from kerasllm.metrics.entities import split_tag

        self._label_names = None
        self.entity_types: list[str] = []
        if names is None:
            return
        names = list(names)
        try:
            parts = [split_tag(name) for name in names]
        except ValueError:
            return  # not a BIO tag set (e.g. part-of-speech tags): no entities to score
        self._label_names = names
        self.entity_types = sorted({kind for prefix, kind in parts if prefix != "O"})
        index = {kind: i for i, kind in enumerate(self.entity_types)}
        # Per class id: the entity type index (-1 for "O") and whether it is an I- tag.
        self._type_of = [index[kind] if prefix != "O" else -1 for prefix, kind in parts]
        self._inside = [prefix == "I" for prefix, _ in parts]

    def metric_sums(self, y, outputs, sample_weight):
        sums = super().metric_sums(y, outputs, sample_weight)
        if self._label_names is None:
            return sums
        if outputs.shape[-1] is not None and outputs.shape[-1] != len(self._label_names):
            raise ValueError(
                f"The model predicts {outputs.shape[-1]} classes but `label_names` names "
                f"{len(self._label_names)}."
            )
        predicted = tf.argmax(outputs, -1, output_type=tf.int32)
        keep = _weights(sample_weight, y) > 0
        true_chunks = self._chunks(tf.cast(y, tf.int32), keep)
        pred_chunks = self._chunks(predicted, keep)
        num_types = len(self.entity_types)

        def per_type(kind, flag):
            return tf.reduce_sum(tf.one_hot(tf.where(flag, kind, -1), num_types), axis=[0, 1])

        (true_kind, true_start, true_end), (pred_kind, pred_start, pred_end) = (
            true_chunks,
            pred_chunks,
        )
        # One entity per start position: a predicted entity is correct when a true one starts
        # at the same word with the same type and ends at the same word.
        correct = true_start & pred_start & (true_kind == pred_kind) & (true_end == pred_end)
        sums["entity_correct"] = per_type(true_kind, correct)
        sums["entity_predicted"] = per_type(pred_kind, pred_start)
        sums["entity_true"] = per_type(true_kind, true_start)
        return sums

    def _chunks(self, ids, keep):
        """BIO decoding as `seqeval` does it, vectorized over a batch of (B, T) tag ids of which
        `keep` marks the words: (type, is_start, end) per position, the words compacted to the
        front of each row in order (so "the previous word" skips sub-words and padding)."""
        length = tf.shape(ids)[1]
        order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)
        valid = tf.range(length)[None, :] < tf.reduce_sum(tf.cast(keep, tf.int32), 1)[:, None]
        ids = tf.clip_by_value(tf.gather(ids, order, batch_dims=1), 0, len(self._type_of) - 1)
        kind = tf.where(valid, tf.gather(tf.constant(self._type_of, tf.int32), ids), -1)
        inside = tf.gather(tf.constant(self._inside), ids) & (kind >= 0)
        previous = tf.pad(kind[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
        # I-X continues the chunk of the previous word when that word is B-X or I-X; any other
        # tag (B-X, or an I-X after "O" or another type) opens a new chunk.
        continues = inside & (kind == previous) & (previous >= 0)
        start = (kind >= 0) & ~continues
        # Each chunk's last position, by chunk number (a running count of starts per row).
        rows = tf.range(tf.shape(ids)[0])[:, None]
        chunk = tf.cumsum(tf.cast(start, tf.int32), axis=1) + rows * (length + 1)
        position = tf.where(kind >= 0, tf.range(length)[None, :], -1)
        last = tf.math.unsorted_segment_max(
            tf.reshape(position, [-1]), tf.reshape(chunk, [-1]), tf.size(ids) + tf.shape(ids)[0]
        )
        end = tf.gather(last, chunk)
        return kind, start, end

    def results(self, sums):
        out = super().results(sums)
        if "entity_true" in sums:
            from kerasllm.metrics.entities import scores_from_counts

            counts = {
                kind: {
                    "correct": float(sums["entity_correct"][i]),
                    "predicted": float(sums["entity_predicted"][i]),
                    "true": float(sums["entity_true"][i]),
                }
                for i, kind in enumerate(self.entity_types)
            }
            scores = scores_from_counts(counts)
            out.update(
                entity_precision=scores["precision"],
                entity_recall=scores["recall"],
                entity_f1=scores["f1"],
            )
        return out


class SpanExtraction(Objective):
    """Extractive question answering: `outputs` (B, L, 2) start/end logits per window, `y`
    (B, 2) the answer's first and last token (0, the `[cls]` token, in a window without the
    answer), as `kerasllm.data.question_answering_dataset` lays them out.

    The loss is the mean of the start and end cross-entropies over the positions (BERT's
    SQuAD loss), averaged over windows. Metrics: loss, `start_accuracy`, `end_accuracy` and
    `span_accuracy` (both right) per window; answer-level exact match and F1 come from
    `QuestionAnswerer.answer` and `kerasllm.metrics.squad` (`kerasllm evaluate`).
    """

    name = "span_extraction"
    task = "question_answerer"

    def normalizers(self, y, sample_weight):
        return [tf.reduce_sum(_weights(sample_weight, y[:, 0]))]

    def _losses(self, y, outputs):
        outputs = tf.cast(outputs, tf.float32)
        start, _ = cross_entropy(y[:, 0], outputs[:, :, 0], self.label_smoothing)
        end, _ = cross_entropy(y[:, 1], outputs[:, :, 1], self.label_smoothing)
        return (start + end) / 2.0

    def loss_sums(self, y, outputs, sample_weight):
        return [tf.reduce_sum(self._losses(y, outputs) * _weights(sample_weight, y[:, 0]))]

    def metric_sums(self, y, outputs, sample_weight):
        weights = _weights(sample_weight, y[:, 0])
        predicted = tf.argmax(outputs, axis=1, output_type=tf.int32)  # (B, 2)
        right = tf.cast(tf.equal(predicted, tf.cast(y, tf.int32)), tf.float32)
        return {
            "loss": tf.reduce_sum(self._losses(y, outputs) * weights),
            "start_correct": tf.reduce_sum(right[:, 0] * weights),
            "end_correct": tf.reduce_sum(right[:, 1] * weights),
            "span_correct": tf.reduce_sum(right[:, 0] * right[:, 1] * weights),
            "weight": tf.reduce_sum(weights),
        }

    def results(self, sums):
        weight = max(float(sums["weight"]), 1e-12)
        return {
            "loss": float(sums["loss"]) / weight,
            "start_accuracy": float(sums["start_correct"]) / weight,
            "end_accuracy": float(sums["end_correct"]) / weight,
            "span_accuracy": float(sums["span_correct"]) / weight,
        }


OBJECTIVES = {
    cls.name: cls
    for cls in (
        MaskedLM,
        CausalLM,
        Seq2Seq,
        SpanCorruption,
        Denoising,
        SequenceClassification,
        TokenClassification,
        SpanExtraction,
    )
}


def get(objective: str | Objective, **kwargs) -> Objective:
    """An objective by name ("masked_lm", "causal_lm", "seq2seq", "span_corruption",
    "denoising", "classification", "token_classification", "span_extraction"), or the given
    instance unchanged.

    Example:
    >>> get("seq2seq", label_smoothing=0.1)
    Seq2Seq(label_smoothing=0.1)
    """
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {objective!r}.{closest(str(objective), OBJECTIVES)} "
            f"Expected one of {list(OBJECTIVES)}."
        )
    return OBJECTIVES[objective](**kwargs)
