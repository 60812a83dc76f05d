"""Knowledge distillation: the temperature KL against a hand computation and Keras', a student
moving towards its teacher through the Trainer, hidden states through a projection, seq2seq
padding masked, the sequence-level corpus, and `kerasllm compress distill` (bundle, load,
export served from a fresh process)."""

from __future__ import annotations

import json
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from compression_helpers import run_fresh

from kerasllm import bundle, testing, tokenizers, zoo
from kerasllm.cli import main
from kerasllm.compression import distillation
from kerasllm.export import export
from kerasllm.models import Encoder, SequenceClassifier
from kerasllm.training import Trainer, TrainerConfig

TEXTS = ["what a good film", "what a bad film", "the cat sat on the mat", "a dog ran"]
SMALL = dict(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kl_at_temperature_matches_hand_computation_and_keras():
    teacher = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], "float32")
    student = np.array([[0.3, -1.0, 2.0], [1.0, 1.0, 1.0]], "float32")
    p, q = _softmax(teacher / 2.0), _softmax(student / 2.0)
    expected = 4.0 * (p * np.log(p / q)).sum(-1)
    got = distillation.kl_divergence(teacher, student, 2.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Keras' LogitsDistillation with a KLDivergence instance: the same quantity, as a batch
    # mean. (Its default, loss="kl_divergence", becomes the plain function, which skips the
    # softmax and compares clipped logits; see the module docstring.)
    keras_loss = keras.distillation.LogitsDistillation(
        temperature=2.0, loss=keras.losses.KLDivergence()
    ).compute_loss(teacher, student)
    np.testing.assert_allclose(float(keras_loss), expected.mean(), rtol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        distillation.kl_divergence(teacher, student, 0.0)


def _classifier(**overrides):
    config = {**testing.TINY, "dropout": 0.0, **overrides}
    return zoo.get("bert_tiny", task="classifier", weights=None, num_classes=3, **config)


def _batch(seed=0, batch=16):
    ids = testing.random_ids(batch, 8, seed=seed)
    mask = np.ones_like(ids)
    mask[: batch // 2, 5:] = 0
    labels = np.random.default_rng(seed).integers(0, 3, batch).astype("int32")
    return {"token_ids": ids * mask, "padding_mask": mask}, labels


def test_student_loss_decreases_and_logits_move_towards_teacher():
    keras.utils.set_random_seed(0)
    teacher = _classifier()
    # A confident teacher (random heads predict nearly uniformly): something to learn.
    teacher.classifier.kernel.assign(teacher.classifier.kernel * 40.0)
    x, y = _batch()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model_fn = lambda: distillation.DistillationModel(  # noqa: E731
        lambda: _classifier(**SMALL), teacher
    )
    objective = distillation.Distillation("classification", temperature=2.0, alpha=1.0)

    def kl(model):
        out = model(x, training=False)
        return float(np.mean(distillation.kl_divergence(out["teacher_logits"], out["logits"], 2)))

    with tempfile.TemporaryDirectory() as folder:
        config = TrainerConfig(
            folder,
            steps=20,
            learning_rate=1e-2,
            warmup_steps=1,
            precision="float32",
            jit_compile=False,
            verbose=0,
        )
        trainer = Trainer(model_fn, objective, config)
        assert not any(v is w for v in trainer.trainable_variables for w in teacher.weights)
        kl_before = kl(trainer.model)
        history = trainer.fit(data)
        after = trainer.evaluate(data)
        trainer.close()
    assert history["step"] == 20
    # alpha = 1: the loss trained on is the KL alone; the student's KL to the teacher fell.
    assert after["kl"] == pytest.approx(kl(trainer.model), rel=1e-4)
    assert after["kl"] < 0.5 * kl_before
    assert set(after) >= {"accuracy", "f1", "kl", "loss"}


def test_hidden_state_loss_through_a_projection_when_widths_differ():
    keras.utils.set_random_seed(1)
    teacher, student = _classifier(), _classifier(**SMALL)
    model = distillation.DistillationModel(student, teacher, hidden_layers=True)
    assert model.layer_map == {0: 1}  # uniform: the student's only block meets the last one
    projection = model.projections[0]
    assert projection.kernel.shape == (8, 16)
    assert any(v is projection.kernel for v in model.trainable_variables)
    assert not any(v is w for v in model.trainable_variables for w in teacher.weights)
    x, y = _batch(batch=4)
    out = model(x, training=False)
    (student_state, teacher_state) = out["hidden"][0]
    # The recorded teacher state is its last block's output (this tiny encoder has no final
    # norm): the backbone's sequence output.
    np.testing.assert_allclose(
        teacher_state, teacher.backbone(x)["sequence_output"], rtol=1e-5, atol=1e-5
    )
    mask = x["padding_mask"].astype("float32")
    squared = ((np.asarray(student_state) - np.asarray(teacher_state)) ** 2).mean(-1)
    per_example = (squared * mask).sum(1) / mask.sum(1)
    objective = distillation.Distillation("classification", alpha=0.0, hidden_weight=2.0)
    (total,) = objective.loss_sums(y, out, None)
    (hard,) = objective.base.loss_sums(y, out["logits"], None)
    assert float(total) == pytest.approx(float(hard) + 2.0 * per_example.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="student block 3"):
        distillation.DistillationModel(student, teacher, hidden_layers={3: 0})
    with pytest.raises(ValueError, match="vocabulary_size"):
        distillation.DistillationModel(_classifier(vocabulary_size=50), teacher)


def _reference_logits(attention, x):
    """(B, heads, T, S) logits of a self-attention layer computed from its weights in numpy
    (no rotary/bias in these configs)."""
    q = np.asarray(attention.query_dense(x))
    k, _ = attention._keys_and_values(x, 0)
    b, t = q.shape[:2]
    q = q.reshape(b, t, attention.num_heads, attention.head_dim)
    return np.einsum("btnh,bsnh->bnts", q, np.asarray(k)) * attention.head_dim**-0.5


def test_attention_loss_compares_recorded_logits_over_the_attended_keys():
    keras.utils.set_random_seed(3)
    teacher, student = _classifier(), _classifier(**SMALL)  # 4 teacher heads, 2 student heads
    model = distillation.DistillationModel(student, teacher, attention_layers=True)
    assert model.attention_map == {0: 1}
    x, y = _batch(batch=4)
    out = model(x, training=False)
    # Recording leaves the outputs alone (explicit path == fused path).
    np.testing.assert_allclose(out["teacher_logits"], teacher(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["logits"], student(x), rtol=1e-5, atol=1e-5)
    scores, target, mask = (np.asarray(v) for v in out["attention"][0])
    # The teacher's recorded logits are its last block's: check against numpy from the input
    # that block sees (the first block's output).
    with distillation.recording_hidden_states(teacher.backbone) as states:
        teacher(x)
    block = teacher.backbone.blocks[1]
    normed = block.self_attention_norm(states[0][1]) if block.norm_first else states[0][1]
    expected = _reference_logits(block.self_attention, normed).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(target, expected, rtol=1e-4, atol=1e-4)
    assert scores.shape == target.shape == (4, 1, 8, 8)  # head counts differ: head means
    # The loss: squared error over the keys each query may see, per query, then the mean over
    # each example's real tokens.
    allowed = np.broadcast_to(mask, scores.shape).astype("float32")
    per_query = ((scores - target) ** 2 * allowed).sum(-1) / allowed.sum(-1)  # (B, 1, T)
    token_mask = x["padding_mask"].astype("float32")
    per_example = (per_query[:, 0] * token_mask).sum(1) / token_mask.sum(1)
    objective = distillation.Distillation("classification", alpha=0.0, attention_weight=0.5)
    (total,) = objective.loss_sums(y, out, None)
    (hard,) = objective.base.loss_sums(y, out["logits"], None)
    assert float(total) == pytest.approx(float(hard) + 0.5 * per_example.sum(), rel=1e-5)
    # Logits at padded keys do not count.
    noisy = dict(out)
    noisy["attention"] = [(out["attention"][0][0], target + 50.0 * (1 - allowed), mask)]
    assert float(objective.loss_sums(y, noisy, None)[0]) == pytest.approx(float(total), rel=1e-6)
    with pytest.raises(ValueError, match="attention_layers"):
        distillation.Distillation("classification", attention_weight=1.0).loss_sums(
            y, model.__class__(student, teacher)(x), None
        )
    with pytest.raises(ValueError, match="`attention_layers` names teacher block 5"):
        distillation.DistillationModel(student, teacher, attention_layers={0: 5})


def test_training_on_the_attention_loss_alone_brings_the_student_logits_closer():
    keras.utils.set_random_seed(4)
    teacher = _classifier()
    # Random init gives near-zero logits; sharpen the teacher's attention: something to learn.
    for block in teacher.backbone.blocks:
        kernel = block.self_attention.query_dense.kernel
        kernel.assign(kernel * 30.0)
    x, y = _batch(batch=8)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    objective = distillation.Distillation("classification", alpha=1.0, attention_weight=1.0)
    model_fn = lambda: distillation.DistillationModel(  # noqa: E731
        lambda: _classifier(num_layers=1), teacher, attention_layers=True
    )

    def attention_error(model):
        out = model(x, training=False)
        return float(np.mean(objective.attention_loss(y, out)))

    with tempfile.TemporaryDirectory() as folder:
        config = TrainerConfig(
            folder, steps=30, learning_rate=3e-2, warmup_steps=1, precision="float32",
            jit_compile=False, verbose=0,
        )  # fmt: skip
        trainer = Trainer(model_fn, objective, config)
        before = attention_error(trainer.model)
        trainer.fit(data)
        after = attention_error(trainer.model)
        trainer.close()
    assert after < 0.5 * before


def test_seq2seq_word_level_kd_masks_padding():
    keras.utils.set_random_seed(2)
    small = dict(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16)
    make = lambda **o: zoo.get(  # noqa: E731
        "transformer_tiny", task="seq2seq_lm", weights=None, **{**testing.TINY, **o}
    )
    model = distillation.DistillationModel(make(**small), make(), hidden_layers=True)
    x = testing.seq2seq_inputs(batch=2, source_lengths=[9, 5], target_lengths=[7, 3])
    out = model(x, training=False)
    assert out["logits"].shape == out["teacher_logits"].shape == (2, 7, 97)
    y = np.roll(x["decoder_token_ids"], -1, axis=1)
    weights = np.asarray(x["decoder_padding_mask"], "float32")
    objective = distillation.Distillation("seq2seq", temperature=2.0, alpha=0.7, hidden_weight=1)
    (loss,) = objective.loss_sums(y, out, weights)
    noisy = dict(out)
    noise = np.random.default_rng(0).normal(size=out["teacher_logits"].shape) * 5
    noisy["teacher_logits"] = out["teacher_logits"] + noise * (1 - weights)[:, :, None]
    noisy["hidden"] = [(s, t + 3.0 * (1 - weights)[:, :, None]) for s, t in out["hidden"]]
    (same,) = objective.loss_sums(y, noisy, weights)
    assert float(same) == pytest.approx(float(loss), rel=1e-6)
    noisy["teacher_logits"] = out["teacher_logits"] + noise * weights[:, :, None]
    (changed,) = objective.loss_sums(y, noisy, weights)
    assert abs(float(changed) - float(loss)) > 1e-3
    assert objective.normalizers(y, weights)[0].numpy() == weights.sum()


def test_sequence_level_corpus_is_the_teachers_generate_output_and_resumes(tmp_path):
    teacher = bundle.load(testing.tiny_translation_bundle(tmp_path / "teacher")).model
    sources = ["the king said", "le roi\tdit", "to the people", "the people said"]
    clean = [s.replace("\t", " ") for s in sources]
    # Shortest first (stable): batches of similar lengths, which stop decoding together.
    shortest_first = [clean[i] for i in (1, 0, 2, 3)]
    batches = []
    generate = teacher.generate

    def recording_generate(batch, **kwargs):
        batches.append(list(batch))
        return generate(batch, **kwargs)

    teacher.generate = recording_generate
    # Beam search (the paper's choice; greedy is the same call with another sampler), in
    # batches of 2 as `generate` is called here too (one compiled shape).
    path = distillation.sequence_level_corpus(
        teacher, sources, tmp_path / "beam.tsv", batch_size=2, max_new_tokens=4, verbose=False
    )
    assert batches == [shortest_first[:2], shortest_first[2:]]
    outputs = dict(
        zip(
            shortest_first,
            [t for b in batches for t in generate(b, max_new_tokens=4, sampler="beam")],
        )
    )
    lines = path.read_text("utf-8").splitlines()
    # The file keeps the order of `sources`.
    assert [line.split("\t") for line in lines] == [
        [s, " ".join(outputs[s].split())] for s in clean
    ]
    # A finished corpus of the same sources is kept (no generation: greedy is not compiled).
    distillation.sequence_level_corpus(teacher, sources, path, sampler="greedy", verbose=False)
    assert path.read_text("utf-8").splitlines() == lines and len(batches) == 2
    # A partial file (two whole lines, shortest first, and a cut one) is resumed: only the
    # rest is generated, and the corpus at the end is the same.
    by_source = dict(zip(clean, lines))
    partial = tmp_path / "resumed.tsv.partial"
    partial.write_text(
        by_source[shortest_first[0]] + "\n" + by_source[shortest_first[1]] + "\n" + "to t", "utf-8"
    )
    path = distillation.sequence_level_corpus(
        teacher, sources, tmp_path / "resumed.tsv", batch_size=2, max_new_tokens=4, verbose=False
    )
    assert path.read_text("utf-8").splitlines() == lines and not partial.exists()
    assert batches[2:] == [shortest_first[2:]]
    partial.write_text("other source\tx\n", "utf-8")
    with pytest.raises(ValueError, match="other sources"):
        distillation.sequence_level_corpus(teacher, sources, tmp_path / "resumed.tsv")


SERVE = r"""
import json, sys
sys.modules["kerasllm"] = None  # the export must serve without kerasllm
import tensorflow as tf
import tensorflow_text  # noqa: F401
path, texts = sys.argv[1], json.loads(sys.argv[2])
clf = tf.saved_model.load(path).signatures["serving_default"]
print("RESULT" + json.dumps(clf(text=tf.constant(texts))["probabilities"].numpy().tolist()))
"""


def test_cli_distill_writes_a_bundle_that_loads_and_serves_from_a_fresh_process(tmp_path, capsys):
    tok = tokenizers.train_wordpiece(TEXTS * 10, vocabulary_size=80)
    teacher = SequenceClassifier(
        Encoder(**testing.tiny_config(max_sequence_length=16, vocabulary_size=tok.vocabulary_size)),
        num_classes=2,
    )
    folder = tmp_path / "teacher"
    bundle.Bundle(teacher, {"text": tok}, {"sequence_length": 10}).save(folder)
    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(TEXTS * 2)), "utf-8"
    )
    out = tmp_path / "student"
    overrides = [a for k, v in SMALL.items() for a in ("--override", f"{k}={v}")]
    status = main(
        ["compress", "distill", "--teacher", str(folder), "--student", "bert_tiny", *overrides,
         "--data", str(data), "--steps", "3", "--train-batch-size", "2", "--batch-size", "2",
         "--alpha", "0.5", "--hidden-weight", "1", "--attention-weight", "0.5",
         "--benchmark-size", "0",
         "--output", str(out)]
    )  # fmt: skip
    assert status == 0
    report = json.loads((out / "compression_report.json").read_text("utf-8"))
    record = report["compression"]
    assert record["method"] == "distillation" and record["training"]["steps"] == 3
    assert (record["hidden_weight"], record["attention_weight"]) == (1.0, 0.5)
    assert report["parameters"]["compressed"]["values"] < report["parameters"]["original"]["values"]
    assert set(report["quality"]) == {"original", "compressed"}
    assert "word-level distillation" in (out / "MODEL_CARD.md").read_text("utf-8")
    student = bundle.load(out)
    assert student.model.backbone.num_layers == 1 and student.model.backbone.hidden_dim == 8
    assert student.metadata["compression"][-1]["kind"] == "word"
    path = export(student, tmp_path / "export")
    served = run_fresh(SERVE, str(path), json.dumps(TEXTS), cwd=tmp_path)
    expected = _softmax(np.asarray(student.model.predict(TEXTS, verbose=0)))
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_cli_distill_errors(tmp_path, capsys):
    folder = str(testing.tiny_translation_bundle(tmp_path / "teacher"))
    base = ["compress", "distill", "--teacher", folder, "--student", "transformer_tiny"]
    for extra, message in (
        (["--alpha", "2", "--data", "x.tsv"], "--alpha must be in [0, 1]"),
        (["--temperature", "0", "--data", "x.tsv"], "--temperature must be > 0"),
        (["--attention-weight", "-1", "--data", "x.tsv"], "--attention-weight must be >= 0"),
        (["--override", "num_layers=0", "--data", "x.tsv"], "--student/--override"),
    ):
        assert main([*base, *extra, "--output", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err


def test_cli_sequence_distillation_reuses_a_given_corpus_without_claiming_its_sampler(
    tmp_path, capsys
):
    from kerasllm.training import inputs

    folder = str(testing.tiny_translation_bundle(tmp_path / "teacher"))
    data = tmp_path / "pairs.tsv"
    data.write_text("the king said\tle roi dit\nthe people\tle peuple\n" * 10, "utf-8")
    # A finished corpus for the training sources (as an earlier run or another tool wrote it).
    sources = [source for source, _ in inputs.load_corpus("seq2seq", str(data)).train]
    corpus = distillation.write_tsv_pairs(tmp_path / "given.tsv", [(s, "le roi") for s in sources])
    argv = ["compress", "distill", "--teacher", folder, "--student", "transformer_tiny"]
    argv += ["--override", "num_layers=1", "--data", str(data), "--kind", "sequence"]
    argv += ["--sequence-corpus", str(corpus), "--steps", "2", "--train-batch-size", "4"]
    argv += ["--max-new-tokens", "4", "--benchmark-size", "0", "--max-examples", "2"]
    assert main([*argv, "--output", str(tmp_path / "student")]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "student" / "compression_report.json").read_text("utf-8"))
    made = report["compression"]["sequence_corpus"]
    assert (made["sampler"], made["reused"], made["sources"]) == (None, True, len(sources))
    assert "outputs read from given.tsv" in report["compression"]["scheme"]
    assert "beam" not in report["compression"]["scheme"]  # --sampler's default is not claimed
