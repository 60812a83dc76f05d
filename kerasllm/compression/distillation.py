"""Knowledge distillation through the project's `Trainer`: a small student learns from a frozen
teacher.

- Word-level KD (Hinton et al., 2015): `Distillation` is a `training.objectives.Objective`
  that mixes the task's hard-label loss (the wrapped objective's, e.g. `SequenceClassification`
  or `Seq2Seq`) with the temperature-scaled KL divergence from the teacher's distribution to
  the student's, weighted by `alpha`, per example (classifiers) or per target token (seq2seq,
  padding weighted 0), plus optional TinyBERT-style hidden-state MSE between mapped student
  and teacher layers through a learned projection when their widths differ, and TinyBERT's
  attention loss: MSE between the mapped layers' self-attention logits.
- `DistillationModel` holds the student, the frozen teacher (run with `training=False`) and
  the projections; its outputs are what `Distillation` reads. Build it inside the trainer
  (pass a function) and any `tf.distribute` strategy works; train with
  `Trainer(lambda: DistillationModel(student_fn, teacher_fn), Distillation(...), config)` and
  keep `model.student`.
- Sequence-level KD (Kim & Rush, 2016): `sequence_level_corpus` writes the teacher's beam
  search (or greedy) outputs over the training sources as a `source<TAB>target` file, which
  the ordinary seq2seq pipeline (`kerasllm.data.read_tsv_pairs`, `--data FILE`) trains on.

Why not `keras.distillation`: its `LogitsDistillation.compute_loss` returns one batch *mean*
(softmax probabilities through `keras.losses.KLDivergence`, which clips them; with its default
`loss="kl_divergence"`, Keras 3.15 resolves the plain function and skips the softmax, comparing
clipped logits: 8.53 instead of 1.54 on the test's example), whereas the
trainer adds replica-local weighted *sums* normalized by the global count of real tokens, with
padding weighted 0; and `FeatureDistillation` taps `layer.output` of functional models, which
the project's subclassed backbones have not (`models.backbone.recording_hidden_states` records
their block outputs instead, and `layers.attention.recording_attention_logits` the attention
logits, which keras.distillation has no loss for). The KL below is computed from log-softmax
of the logits (exact, no clipping), times `temperature**2` as in `LogitsDistillation`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerasllm.layers.attention import recording_attention_logits
from kerasllm.models.backbone import recording_hidden_states
from kerasllm.training import objectives
from kerasllm.utils.files import atomic_write_text

ModelOrFn = keras.Model | Callable[[], keras.Model]


def kl_divergence(teacher_logits, student_logits, temperature: float = 1.0):
    """Per-position `temperature**2 * KL(softmax(t / T) || softmax(s / T))` over the last axis.

    Returns a tensor shaped like the logits without their last axis.

    Example:
    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0]], "float32")
    >>> float(kl_divergence(t, t, 2.0)[0])
    0.0
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature!r}.")
    teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
    return kl * (temperature**2)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> dict[int, int]:
    """TinyBERT's uniform map: student block `m` (0-based) learns from teacher block
    `(m + 1) * N / M - 1`, so the last blocks meet.

    Example:
    >>> uniform_layer_map(2, 6)
    {0: 2, 1: 5}
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError(
            f"Layer counts must be >= 1; got student {student_layers}, teacher {teacher_layers}."
        )
    return {m: (m + 1) * teacher_layers // student_layers - 1 for m in range(student_layers)}


def _build(model: ModelOrFn, what: str) -> keras.Model:
    if isinstance(model, keras.Model):
        return model
    if callable(model):
        built = model()
        if not isinstance(built, keras.Model):
            raise ValueError(f"`{what}` returned a {type(built).__name__}, not a keras.Model.")
        return built
    raise ValueError(f"`{what}` must be a keras.Model or a function returning one.")


def _stack_of(model) -> str:
    """The block stack whose hidden states are distilled: the encoder of encoder-only models,
    the decoder of seq2seq and causal LMs (their states line up with the target tokens)."""
    from kerasllm.models import Encoder

    return "encoder" if isinstance(model.backbone, Encoder) else "decoder"


def _stack_blocks(model) -> list:
    """Blocks of the stack `_stack_of` names (a seq2seq backbone's decoder blocks)."""
    backbone = model.backbone
    blocks = getattr(backbone, "decoder_blocks", None)
    return list(blocks if blocks is not None else backbone.blocks)


class DistillationModel(keras.Model):
    """A student with its frozen teacher: `call(x)` runs both on the same inputs and returns
    `{"logits", "teacher_logits"}` (+ `"hidden"`: `[(projected student, teacher)]` per mapped
    layer when `hidden_layers` is on; `"attention"`: `[(student, teacher, mask)]` self-attention
    logits per mapped layer when `attention_layers` is on; and then `"padding_mask"`). The
    teacher runs in inference mode (`training=False`: no dropout), its outputs without
    gradient, its weights frozen; the trainer updates only the student and the projections.

    Both models must read the same token ids (the student on the teacher's tokenizer) and
    predict over the same classes or vocabulary.

    Args:
        student: a task model, or a function building one (called here: inside the trainer's
            strategy scope when the trainer calls this class).
        teacher: the same for the teacher (e.g. `lambda: bundle.load(path).model`).
        hidden_layers: distill block outputs too: True for `uniform_layer_map`, or a
            `{student block: teacher block}` dict (0-based); None/False for logits only.
        attention_layers: distill the self-attention logits of these blocks too (TinyBERT),
            given like `hidden_layers`. Logits are (B, heads, T, S), scaled, before masking
            and softmax; when the two models' head counts differ, each side's mean over its
            heads is compared.

    Example:
    >>> from kerasllm import zoo
    >>> from kerasllm.testing import TINY, random_ids
    >>> teacher = zoo.get("bert_tiny", task="classifier", weights=None, num_classes=2, **TINY)
    >>> student = zoo.get("bert_tiny", task="classifier", weights=None, num_classes=2,
    ...                   **{**TINY, "num_layers": 1, "hidden_dim": 8, "intermediate_dim": 16})
    >>> model = DistillationModel(student, teacher, hidden_layers=True)
    >>> out = model({"token_ids": random_ids(2, 5), "padding_mask": random_ids(2, 5) > 0})
    >>> out["logits"].shape, len(out["hidden"]), out["hidden"][0][0].shape
    (TensorShape([2, 2]), 1, TensorShape([2, 5, 16]))
    >>> model = DistillationModel(student, teacher, attention_layers={0: 1})
    >>> out = model({"token_ids": random_ids(2, 5), "padding_mask": random_ids(2, 5) > 0})
    >>> [tuple(x.shape) for x in out["attention"][0]]
    [(2, 4, 5, 5), (2, 4, 5, 5), (2, 1, 1, 5)]
    """

    def __init__(
        self,
        student: ModelOrFn,
        teacher: ModelOrFn,
        hidden_layers: bool | dict[int, int] | None = None,
        attention_layers: bool | dict[int, int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.student = _build(student, "student")
        self.teacher = _build(teacher, "teacher")
        self.teacher.trainable = False
        self._check_outputs()
        self.layer_map: dict[int, int] = {}
        self.projections: list = []
        if hidden_layers:
            self._make_projections(hidden_layers)
        self.attention_map = (
            self._checked_map(attention_layers, "attention_layers") if attention_layers else {}
        )

    def _check_outputs(self) -> None:
        student, teacher = self.student, self.teacher
        if type(student) is not type(teacher):
            raise ValueError(
                f"The student is a {type(student).__name__} but the teacher a "
                f"{type(teacher).__name__}; distillation needs the same task."
            )
        for attribute in ("vocabulary_size",):
            mine = getattr(student.backbone, attribute, None)
            theirs = getattr(teacher.backbone, attribute, None)
            if mine != theirs:
                raise ValueError(
                    f"The student's {attribute} is {mine} but the teacher's {theirs}: the "
                    "student must read the teacher's token ids (build it on the teacher's "
                    "tokenizer, e.g. `vocabulary_size=teacher tokenizer's`)."
                )
        classes = getattr(student, "num_classes", None), getattr(teacher, "num_classes", None)
        if classes[0] != classes[1]:
            raise ValueError(
                f"The student predicts {classes[0]} classes but the teacher {classes[1]}."
            )

    def _checked_map(self, spec, what: str) -> dict[int, int]:
        """`{student block: teacher block}` of `spec` (True: the uniform map), range-checked."""
        student_blocks = len(_stack_blocks(self.student))
        teacher_blocks = len(_stack_blocks(self.teacher))
        layer_map = (
            uniform_layer_map(student_blocks, teacher_blocks)
            if spec is True
            else {int(k): int(v) for k, v in dict(spec).items()}
        )
        for student_layer, teacher_layer in layer_map.items():
            if not 0 <= student_layer < student_blocks:
                raise ValueError(
                    f"`{what}` names student block {student_layer}; the student has "
                    f"{student_blocks} (0..{student_blocks - 1})."
                )
            if not 0 <= teacher_layer < teacher_blocks:
                raise ValueError(
                    f"`{what}` names teacher block {teacher_layer}; the teacher has "
                    f"{teacher_blocks} (0..{teacher_blocks - 1})."
                )
        return dict(sorted(layer_map.items()))

    def _make_projections(self, hidden_layers) -> None:
        self.layer_map = self._checked_map(hidden_layers, "hidden_layers")
        width = self.student.backbone.hidden_dim
        teacher_width = self.teacher.backbone.hidden_dim
        for student_layer in self.layer_map:
            if width == teacher_width:
                self.projections.append(None)
                continue
            projection = keras.layers.Dense(
                teacher_width, use_bias=False, name=f"hidden_projection_{student_layer}"
            )
            projection.build((None, None, width))
            self.projections.append(projection)

    def _states(self, model, x, training):
        """The model's logits, its stack's block outputs, and its stack's self-attention
        records `(logits, mask)` in block order (empty lists when not distilled)."""
        stack = _stack_of(model)
        attention = (
            [block.self_attention for block in _stack_blocks(model)] if self.attention_map else []
        )
        with (
            recording_hidden_states(model.backbone) as states,
            recording_attention_logits(attention) as records,
        ):
            logits = model(x, training=training)
        return (
            logits,
            [state for kind, state in states if kind == stack],
            [(scores, mask) for _, scores, mask in records],
        )

    def call(self, inputs, training=None):
        record = bool(self.layer_map or self.attention_map)
        student_states = teacher_states = student_scores = teacher_scores = []
        if record:
            logits, student_states, student_scores = self._states(self.student, inputs, training)
            teacher_logits, teacher_states, teacher_scores = self._states(
                self.teacher, inputs, False
            )
        else:
            logits = self.student(inputs, training=training)
            teacher_logits = self.teacher(inputs, training=False)
        outputs = {
            "logits": tf.cast(logits, tf.float32),
            "teacher_logits": tf.stop_gradient(tf.cast(teacher_logits, tf.float32)),
        }
        if self.attention_map:
            outputs["attention"] = [
                _attention_pair(student_scores[m], teacher_scores[n])
                for m, n in self.attention_map.items()
            ]
        if record:
            mask = inputs.get("padding_mask", inputs.get("decoder_padding_mask"))
            if mask is None:
                ids = inputs.get("token_ids", inputs.get("decoder_token_ids"))
                mask = tf.ones(tf.shape(ids)[:2])
            outputs["padding_mask"] = tf.cast(mask, tf.float32)
        if self.layer_map:
            pairs = []
            for (student_layer, teacher_layer), projection in zip(
                self.layer_map.items(), self.projections
            ):
                state = student_states[student_layer]
                if projection is not None:
                    state = projection(state)
                target = tf.stop_gradient(tf.cast(teacher_states[teacher_layer], tf.float32))
                pairs.append((tf.cast(state, tf.float32), target))
            outputs["hidden"] = pairs
        return outputs


def _attention_pair(student, teacher):
    """(student, teacher, mask) logits of one mapped layer; head-averaged on both sides when
    the head counts differ (TinyBERT needs equal counts; the mean keeps the loss defined)."""
    (scores, mask), (target, _) = student, teacher
    if scores.shape[1] != target.shape[1]:
        scores = tf.reduce_mean(scores, axis=1, keepdims=True)
        target = tf.reduce_mean(target, axis=1, keepdims=True)
    if mask is None:
        mask = tf.ones_like(scores[:, :1], tf.bool)
    return scores, tf.stop_gradient(target), mask


class Distillation(objectives.Objective):
    """Word-level knowledge distillation on top of a task objective.

    Loss per example (classifiers) or per target token (seq2seq, causal LM), with the wrapped
    objective's weights and normalizers (padding counts 0):
    `(1 - alpha) * hard-label loss + alpha * T**2 * KL(teacher_T || student_T)
    + hidden_weight * hidden-state MSE + attention_weight * attention MSE`. The hidden-state
    term is the mean over mapped layers of the squared error averaged over the hidden units;
    the attention term (TinyBERT) the mean over mapped layers of the squared error between
    self-attention logits, averaged over heads and the keys each query may attend to. Both are
    per target token for seq2seq and causal LMs (decoder blocks), per example as the mean over
    its real tokens for classifiers and taggers' examples (encoder blocks).

    Evaluation reports the wrapped objective's metrics of the student plus `kl` (per
    example/token, at the temperature).

    Args:
        base: the task objective: a name ("classification", "seq2seq", "causal_lm",
            "token_classification") or an `Objective`.
        temperature: softens both distributions (> 0).
        alpha: weight of the soft (teacher) term in [0, 1]; 0 trains on labels only, 1 on the
            teacher only.
        hidden_weight: weight of the hidden-state term (needs a `DistillationModel` built with
            `hidden_layers`).
        attention_weight: weight of the attention term (needs a `DistillationModel` built
            with `attention_layers`).
        label_smoothing: of the hard-label loss when `base` is a name.

    Example:
    >>> Distillation("classification", temperature=2.0, alpha=0.5)
    Distillation(base=SequenceClassification(label_smoothing=0.0), temperature=2.0, alpha=0.5, hidden_weight=0.0, attention_weight=0.0)
    """  # noqa: E501

    name = "distillation"

    def __init__(
        self,
        base: str | objectives.Objective = "classification",
        temperature: float = 2.0,
        alpha: float = 0.5,
        hidden_weight: float = 0.0,
        label_smoothing: float = 0.0,
        attention_weight: float = 0.0,
    ):
        super().__init__(label_smoothing)
        base = objectives.get(base, label_smoothing=label_smoothing)
        if isinstance(base, (Distillation, objectives.MaskedLM, objectives.SpanExtraction)):
            raise ValueError(
                f"`base` {base.name!r} is not supported: distillation wraps a per-example or "
                "per-token objective (classification, token_classification, seq2seq, "
                "causal_lm)."
            )
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0; got {temperature!r}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]; got {alpha!r}.")
        if hidden_weight < 0:
            raise ValueError(f"`hidden_weight` must be >= 0; got {hidden_weight!r}.")
        if not attention_weight >= 0:
            raise ValueError(f"`attention_weight` must be >= 0; got {attention_weight!r}.")
        self.base = base
        self.task = base.task
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.hidden_weight = float(hidden_weight)
        self.attention_weight = float(attention_weight)

    def normalizers(self, y, sample_weight):
        return self.base.normalizers(y, sample_weight)

    def _outputs(self, outputs) -> dict:
        if not (isinstance(outputs, dict) and "teacher_logits" in outputs):
            raise ValueError(
                "The distillation objective needs a DistillationModel's outputs "
                "({'logits', 'teacher_logits', ...}); got a plain model's."
            )
        return outputs

    def hidden_loss(self, y, outputs):
        """Per-example (rank-1 `y`) or per-token hidden-state MSE, shaped like `y`."""
        pairs = outputs.get("hidden") or []
        if not pairs:
            raise ValueError(
                "`hidden_weight` > 0 needs a DistillationModel built with `hidden_layers`."
            )
        per_position = tf.add_n(
            [tf.reduce_mean(tf.square(s - t), axis=-1) for s, t in pairs]
        ) / float(len(pairs))  # (B, T)
        return self._per_label(y, per_position, outputs)

    def attention_loss(self, y, outputs):
        """Per-example (rank-1 `y`) or per-token attention-logit MSE, shaped like `y`."""
        triples = outputs.get("attention") or []
        if not triples:
            raise ValueError(
                "`attention_weight` > 0 needs a DistillationModel built with `attention_layers`."
            )
        per_query = []
        for student, teacher, mask in triples:
            allowed = tf.cast(mask, tf.float32)  # (B, 1, T or 1, S): the keys a query attends to
            error = tf.reduce_sum(tf.square(student - teacher) * allowed, axis=-1)  # (B, H, T)
            keys = tf.reduce_sum(allowed, axis=-1)  # (B, 1, T or 1)
            per_query.append(tf.reduce_mean(tf.math.divide_no_nan(error, keys), axis=1))
        return self._per_label(y, tf.add_n(per_query) / float(len(triples)), outputs)

    @staticmethod
    def _per_label(y, per_position, outputs):
        """A (B, T) per-position loss, per token (rank-2 `y`) or, for one label per example,
        the mean over the example's real tokens."""
        if len(y.shape) == 1:
            mask = outputs["padding_mask"]
            return tf.math.divide_no_nan(
                tf.reduce_sum(per_position * mask, axis=1), tf.reduce_sum(mask, axis=1)
            )
        return per_position

    def loss_sums(self, y, outputs, sample_weight):
        outputs = self._outputs(outputs)
        weights = objectives._weights(sample_weight, y)
        (hard,) = self.base.loss_sums(y, outputs["logits"], sample_weight)
        total = (1.0 - self.alpha) * hard
        if self.alpha:
            soft = kl_divergence(outputs["teacher_logits"], outputs["logits"], self.temperature)
            total += self.alpha * tf.reduce_sum(soft * weights)
        if self.hidden_weight:
            total += self.hidden_weight * tf.reduce_sum(self.hidden_loss(y, outputs) * weights)
        if self.attention_weight:
            attention = self.attention_loss(y, outputs)
            total += self.attention_weight * tf.reduce_sum(attention * weights)
        return [total]

    def metric_sums(self, y, outputs, sample_weight):
        outputs = self._outputs(outputs)
        sums = self.base.metric_sums(y, outputs["logits"], sample_weight)
        weights = objectives._weights(sample_weight, y)
        soft = kl_divergence(outputs["teacher_logits"], outputs["logits"], self.temperature)
        sums["kl"] = tf.reduce_sum(soft * weights)
        sums["kl_weight"] = tf.reduce_sum(weights)
        return sums

    def results(self, sums):
        sums = dict(sums)
        kl, weight = sums.pop("kl"), sums.pop("kl_weight")
        out = self.base.results(sums)
        out["kl"] = float(kl) / max(float(weight), 1e-12)
        return out

    def __repr__(self) -> str:
        return (
            f"Distillation(base={self.base!r}, temperature={self.temperature}, "
            f"alpha={self.alpha}, hidden_weight={self.hidden_weight}, "
            f"attention_weight={self.attention_weight})"
        )


def _one_line(text: str) -> str:
    """`text` fit for one TSV field: tabs and line breaks become spaces."""
    return " ".join(text.replace("\t", " ").split())


def write_tsv_pairs(path: str | os.PathLike, pairs) -> Path:
    r"""Writes `(source, target)` pairs as `source<TAB>target` lines, atomically (the format
    `kerasllm.data.read_tsv_pairs` reads; tabs and line breaks inside become spaces).

    Example:
    >>> import tempfile, os
    >>> path = write_tsv_pairs(os.path.join(tempfile.mkdtemp(), "p.tsv"), [("a\tb", "c")])
    >>> path.read_text()
    'a b\tc\n'
    """
    text = "".join(f"{_one_line(a)}\t{_one_line(b)}\n" for a, b in pairs)
    return atomic_write_text(path, text)


def sequence_level_corpus(
    teacher,
    sources: Sequence[str],
    path: str | os.PathLike,
    *,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    sampler="beam",
    verbose: bool = True,
) -> Path:
    """Sequence-level KD (Kim & Rush, 2016): writes `source<TAB>teacher output` for every
    source, one per line, to `path`: the corpus a student then trains on as on any parallel
    file (`kerasllm.data.read_tsv_pairs`, `kerasllm finetune --data path`).

    Sources are translated shortest first (a stable sort by length in characters), so that
    each batch holds sources of about one length and the decoding loop, which stops when the
    whole batch has ended, runs no longer than the batch's longest output needs; `path` is
    written in the order of `sources` all the same.

    Resumable and atomic: lines go to `path + ".partial"` batch by batch (flushed, in the
    shortest-first order); a rerun keeps the lines already there and generates the rest;
    `path` appears, complete, only at the end (written atomically in `sources`' order, then
    the partial file removed). A finished `path` of the same sources is kept as it is (delete
    it to generate again, e.g. with another sampler). Sources and outputs are written on one
    line each (tabs and line breaks become spaces); pairs with an empty side are still
    written (the reader skips them).

    Args:
        teacher: a `Seq2SeqLM` with its preprocessor (as `bundle.load(...).model` or `zoo.get`
            give it), generating text from text.
        sources: the training sources.
        path: the output file.
        batch_size: sources per `generate` call.
        max_new_tokens: the longest output.
        sampler: "beam" (the paper's choice; a `BeamSampler` for other widths), "greedy", or
            any `kerasllm.generation` sampler.
        verbose: show a progress display on stderr.

    Returns:
        `path`.

    Example:
    >>> import tempfile, os
    >>> from kerasllm import zoo, tokenizers, preprocessors
    >>> tok = tokenizers.train_sentencepiece(["a b c d"] * 20, vocabulary_size=270)
    >>> lm = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None,
    ...              vocabulary_size=tok.vocabulary_size)
    >>> _ = preprocessors.attach(lm, {"source": tok, "target": tok})
    >>> out = sequence_level_corpus(lm, ["a b", "c d"], os.path.join(tempfile.mkdtemp(), "kd.tsv"),
    ...                             max_new_tokens=3, sampler="greedy", verbose=False)
    >>> len(out.read_text().splitlines())
    2
    """
    from kerasllm.utils.progress import Progress

    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1; got {max_new_tokens}.")
    if getattr(teacher, "preprocessor", None) is None:
        raise ValueError(
            "`teacher` needs its preprocessor (text in, text out): load it with "
            "`kerasllm.bundle.load` or `zoo.get`."
        )
    sources = [_one_line(s) for s in sources]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if path.is_file() and not partial.exists():
        written = [line.split("\t", 1)[0] for line in path.read_text("utf-8").splitlines()]
        if written == sources:  # a finished corpus of the same sources: nothing to redo
            return path
    # Shortest first: a batch of similar lengths stops decoding together (see above).
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    ordered = [sources[i] for i in order]
    done = 0
    if partial.is_file():
        lines = partial.read_text("utf-8").split("\n")
        # Only whole lines count: a run killed mid-write may leave a cut last line.
        complete = lines[:-1]
        if any(line.split("\t", 1)[0] != source for line, source in zip(complete, ordered)):
            raise ValueError(
                f"{partial} holds other sources than `sources`; delete it to start again."
            )
        done = min(len(complete), len(sources))
        partial.write_text("".join(line + "\n" for line in complete[:done]), "utf-8")
    progress = Progress(len(sources), label="examples", delay=0.0) if verbose else None
    try:
        with open(partial, "a", encoding="utf-8") as out:
            for start in range(done, len(sources), batch_size):
                batch = ordered[start : start + batch_size]
                outputs = teacher.generate(batch, max_new_tokens=max_new_tokens, sampler=sampler)
                out.write("".join(f"{s}\t{_one_line(t)}\n" for s, t in zip(batch, outputs)))
                out.flush()
                if progress is not None:
                    progress.update(start + len(batch))
    finally:
        if progress is not None:
            progress.close()
    lines = partial.read_text("utf-8").splitlines()
    by_source = [""] * len(sources)
    for position, line in zip(order, lines):
        by_source[position] = line + "\n"
    atomic_write_text(path, "".join(by_source))
    partial.unlink()
    return path


#: The `kerasllm.zoo` task name of each task model class a student can be built for.
_TASK_NAMES = {
    "SequenceClassifier": "classifier",
    "TokenClassifier": "token_classifier",
    "Seq2SeqLM": "seq2seq_lm",
    "CausalLM": "causal_lm",
}


def build_student(preset: str, teacher: keras.Model, **overrides) -> keras.Model:
    """A randomly initialized student for `teacher`: `preset`'s backbone (with `overrides`)
    as the teacher's kind of task model, on the teacher's vocabulary (so it reads the teacher's
    token ids), with the teacher's classes and, unless overridden, its `max_sequence_length`.

    Example:
    >>> from kerasllm import zoo
    >>> from kerasllm.testing import TINY
    >>> teacher = zoo.get("bert_tiny", task="classifier", weights=None, num_classes=3, **TINY)
    >>> student = build_student("bert_tiny", teacher, num_layers=1, hidden_dim=8,
    ...                         num_heads=2, intermediate_dim=16)
    >>> student.num_classes, student.backbone.vocabulary_size, student.backbone.num_layers
    (3, 97, 1)
    """
    from kerasllm import zoo

    kind = type(teacher).__name__
    if kind not in _TASK_NAMES:
        raise ValueError(
            f"The teacher is a {kind}; distillation builds students for {sorted(_TASK_NAMES)}."
        )
    settings = {
        "vocabulary_size": teacher.backbone.vocabulary_size,
        "max_sequence_length": teacher.backbone.max_sequence_length,
    }
    if getattr(teacher, "num_classes", None) is not None:
        settings["num_classes"] = teacher.num_classes
    settings.update(overrides)
    return zoo.get(preset, task=_TASK_NAMES[kind], weights=None, **settings)
