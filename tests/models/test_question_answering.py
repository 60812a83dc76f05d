"""Extractive question answering: windows and labels, post-processing, the task model, its
objective and pipeline, and the exported `(question, context) -> (answer, score)` signature
served from a process with only TensorFlow and TensorFlow Text."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm import bundle, metrics, preprocessors, zoo
from kerasllm.data import question_answering_dataset
from kerasllm.export import export
from kerasllm.models import Encoder, QuestionAnswerer, SpanCrossEntropy
from kerasllm.preprocessors import QuestionAnswererPreprocessor, best_spans
from kerasllm.testing import tiny_config
from kerasllm.training import objectives

CONTEXT = "Mike Pence cast the vote in Washington on Tuesday, said Zoë at the café."
CORPUS = [CONTEXT, "who cast the vote ? where was the vote ?"] * 20
#: Fuzz pairs: empty question, empty context, both empty, a 10k-character context, Unicode.
FUZZ = [
    ("", CONTEXT),
    ("who cast the vote ?", ""),
    ("", ""),
    ("who ?", "word " * 2000),
    ("😀 qui ?", "שלום עולם 😀🎉 مرحبا café\x00\x07"),
    ("who cast the vote ?", CONTEXT),
]


@pytest.fixture(scope="module")
def tokenizer():
    return kt.train_wordpiece(CORPUS, vocabulary_size=90)


def _oracle_logits(labels: np.ndarray, width: int) -> np.ndarray:
    logits = np.full((len(labels), width, 2), -5.0, "float32")
    for row, (start, end) in enumerate(labels):
        logits[row, start, 0] = 5.0
        logits[row, end, 1] = 5.0
    return logits


@pytest.mark.parametrize("answer", ["Mike Pence", "Washington", "Zoë", "café"])
def test_labels_then_best_spans_give_back_the_answer(tokenizer, answer):
    start = CONTEXT.index(answer)
    pre = QuestionAnswererPreprocessor(tokenizer, sequence_length=12, stride=3)
    pair = (["who cast the vote ?"], [CONTEXT])
    x, y = pre(pair, [[start, start + len(answer)]])
    encoded = pre.encode(pair)
    labels = y.numpy()
    assert len(labels) > 1  # the context needs several windows
    answered = labels[:, 0] > 0
    assert answered.any() and (labels[answered, 1] >= labels[answered, 0]).all()
    # Windows without the whole answer point to [cls]; the answer's tokens are context tokens.
    assert (labels[~answered] == 0).all()
    start_offsets = encoded["token_start"].numpy()
    assert (start_offsets[answered, labels[answered, 0]] >= 0).all()
    spans = best_spans(_oracle_logits(labels, x["token_ids"].shape[1]), encoded)
    assert spans["answer"].numpy()[0, 0].decode() == answer
    assert spans["start"].numpy()[0, 0] == start
    assert spans["end"].numpy()[0, 0] == start + len(answer)


def test_windows_cover_every_context_token_and_fit_the_length(tokenizer):
    pre = QuestionAnswererPreprocessor(tokenizer, sequence_length=12, stride=4)
    encoded = pre.encode((["who cast the vote ?", "where ?"], [CONTEXT, "the vote"]))
    ids = encoded["token_ids"].numpy()
    assert ids.shape[1] <= 12
    example = encoded["example_index"].numpy()
    assert example.tolist() == sorted(example.tolist()) and set(example) == {0, 1}
    starts = encoded["token_start"].numpy()
    seen = {s for s in starts[example == 0].ravel().tolist() if s >= 0}
    words = {CONTEXT.encode().index(w.encode()) for w in ("Mike", "Pence", "café", ".")}
    assert words <= seen
    # Segment ids: 0 on [cls] question [sep], 1 on the context window and its [sep].
    segments = encoded["segment_ids"].numpy()
    assert ((segments == 1) >= (starts >= 0)).all()
    # An empty batch gives no window (and no label), not an error.
    x, y = pre(([], []), np.zeros((0, 2), "int32"))
    assert x["token_ids"].shape[0] == 0 and y.shape == (0, 2)


def test_best_spans_respect_max_answer_length_and_n_best(tokenizer):
    pre = QuestionAnswererPreprocessor(tokenizer, sequence_length=40)
    encoded = pre.encode((["who ?"], [CONTEXT]))
    width = encoded["token_ids"].shape[1]
    logits = np.zeros((1, width, 2), "float32")
    logits[0, 4, 0] = 8.0  # first context token
    logits[0, width - 2, 1] = 8.0  # last context token: too far for max_answer_length=3
    spans = best_spans(logits, encoded, max_answer_length=3, n_best=3)
    answers = [a.decode() for a in spans["answer"].numpy()[0]]
    scores = spans["score"].numpy()[0]
    assert len(answers) == 3 and all(answers) and (np.diff(scores) <= 0).all()
    assert all(len(a.split()) <= 3 and a in CONTEXT for a in answers)


def test_answer_gives_one_result_per_fuzz_pair(tokenizer):
    model = QuestionAnswerer(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size, max_sequence_length=64)),
        preprocessor=QuestionAnswererPreprocessor(tokenizer, sequence_length=64, stride=48),
    )
    questions, contexts = zip(*FUZZ)
    results = model.answer(list(questions), list(contexts), batch_size=2)
    assert len(results) == len(FUZZ)
    for (_, context), result in zip(FUZZ, results):
        # Never text outside the context: the answer is the context at its offsets.
        if result["start"] >= 0:
            assert result["answer"] == context[result["start"] : result["end"]] != ""
        assert 0.0 <= result["score"] <= 1.0
    nothing = {"answer": "", "score": 0.0, "start": -1, "end": -1}
    assert results[1] == results[2] == nothing  # no context, no answer
    assert set(results[3]["answer"].split()) == {"word"}
    assert results[0]["answer"] and results[4]["answer"]
    assert model.answer([], []) == []
    # `predict` on text gives the same best spans (character offsets and scores) per pair.
    predicted = model.predict((list(questions), list(contexts)), batch_size=4, verbose=0)
    assert predicted["start"].tolist() == [r["start"] for r in results]
    np.testing.assert_allclose(predicted["score"], [r["score"] for r in results], rtol=1e-5)
    best = model.answer("who ?", CONTEXT, n_best=2)
    assert len(best) == 2 and best[0]["score"] >= best[1]["score"]


def test_zoo_builds_a_question_answerer_and_for_task_its_preprocessor(tokenizer):
    size = tokenizer.vocabulary_size
    model = zoo.get("bert_tiny", task="question_answerer", num_layers=1, vocabulary_size=size)
    assert isinstance(model, QuestionAnswerer) and model.preprocessor is None  # no tokenizer
    pre = preprocessors.for_task(model, tokenizer)
    assert isinstance(pre, QuestionAnswererPreprocessor) and pre.sequence_length == 128


def test_objective_loss_matches_the_keras_loss():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7, 2)).astype("float32")
    labels = np.array([[1, 2], [0, 0], [3, 6]])
    objective = objectives.get("span_extraction")
    (total,) = objective.loss_sums(tf.constant(labels), tf.constant(logits), None)
    (count,) = objective.normalizers(tf.constant(labels), None)
    keras_loss = float(SpanCrossEntropy()(labels, logits))
    assert float(total) / float(count) == pytest.approx(keras_loss, rel=1e-5)
    sums = objective.metric_sums(tf.constant(labels), tf.constant(logits), None)
    results = objective.results({k: v.numpy() for k, v in sums.items()})
    assert 0.0 <= results["span_accuracy"] <= results["start_accuracy"] <= 1.0


def test_pipeline_keeps_answered_windows_and_samples_the_others(tokenizer):
    start = CONTEXT.index("Washington")
    spans = [(start, start + len("Washington"))] * 4
    ds, stats = question_answering_dataset(
        ["where ?"] * 4, [CONTEXT] * 4, spans, tokenizer, 12, 8, stride=3,
        unanswered_fraction=0.0, shuffle=False,
    )  # fmt: skip
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert stats["windows"] == stats["answered_windows"] == len(labels) > 0
    assert (labels[:, 0] > 0).all()
    _, every = question_answering_dataset(
        ["where ?"] * 4, [CONTEXT] * 4, spans, tokenizer, 12, 8, stride=3
    )
    assert every["windows"] > stats["windows"]


@pytest.mark.slow  # minutes of CPU on 2 cores; keeps the default suite under ~20 min
def test_export_serves_the_fuzz_batch_in_a_fresh_process(tokenizer, tmp_path):
    model = QuestionAnswerer(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size, max_sequence_length=64)),
        dropout=0.0,
        preprocessor=QuestionAnswererPreprocessor(tokenizer, sequence_length=64, stride=48),
    )
    path = export(bundle.Bundle(model, {"text": tokenizer}), tmp_path / "qa")
    questions, contexts = (list(t) for t in zip(*FUZZ))
    script = (
        "import json, sys\n"
        "for blocked in ('kerasllm', 'keras_hub'):\n"
        "    sys.modules[blocked] = None\n"
        "import tensorflow as tf, tensorflow_text  # noqa\n"
        "fn = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "q, c = json.loads(sys.argv[2]), json.loads(sys.argv[3])\n"
        "out = fn(question=tf.constant(q, tf.string), context=tf.constant(c, tf.string))\n"
        "print('RESULT' + json.dumps({k: [v.decode('utf-8', 'replace') if isinstance(v, bytes)"
        " else v for v in t.numpy().tolist()] for k, t in out.items()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), json.dumps(questions), json.dumps(contexts)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))[6:])
    assert {len(v) for v in served.values()} == {len(FUZZ)}
    expected = model.answer(questions, contexts)
    assert served["answer"] == [r["answer"] for r in expected]
    assert served["start"] == [r["start"] for r in expected]
    np.testing.assert_allclose(served["score"], [r["score"] for r in expected], rtol=1e-4)


def test_trainer_learns_spans_with_the_objective_and_pipeline(tokenizer, tmp_path):
    from kerasllm.training import Trainer, TrainerConfig
    from kerasllm.training.inputs import dataset_fn

    start = CONTEXT.index("Washington")
    examples = (
        ["where was the vote ?"] * 8,
        [CONTEXT] * 8,
        [(start, start + len("Washington"))] * 8,
        [["Washington"]] * 8,
    )

    def build():
        encoder = Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size))
        return QuestionAnswerer(encoder, dropout=0.0)

    config = TrainerConfig(str(tmp_path), steps=12, learning_rate=3e-3, log_every=12, verbose=0)
    trainer = Trainer(build, "span_extraction", config, "one_device")
    data = dataset_fn("span_extraction", examples, tokenizer, 8, 16, training=True)
    before = trainer.evaluate(dataset_fn("span_extraction", examples, tokenizer, 8, 16, False))
    trainer.fit(data)
    after = trainer.evaluate(dataset_fn("span_extraction", examples, tokenizer, 8, 16, False))
    assert set(after) == {"loss", "start_accuracy", "end_accuracy", "span_accuracy"}
    assert after["loss"] < before["loss"]


def test_cli_predict_and_evaluate_a_qa_bundle(tokenizer, tmp_path, capsys):
    from kerasllm.cli import main

    model = QuestionAnswerer(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size, max_sequence_length=24)),
        preprocessor=QuestionAnswererPreprocessor(tokenizer, sequence_length=24, stride=8),
    )
    folder = bundle.Bundle(model, {"text": tokenizer}).save(tmp_path / "qa")
    out = tmp_path / "answers.jsonl"
    question = "who cast the vote ?"
    argv = ["predict", "--model", folder, "--text", question, "--text-pair", CONTEXT]
    assert main([str(a) for a in [*argv, "--output", out]]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record == {"question": question, **model.answer(question, CONTEXT)}
    start = CONTEXT.index("Mike Pence")
    data = tmp_path / "test.jsonl"
    example = {"question": question, "context": CONTEXT}
    answers = [{"text": "Mike Pence", "answer_start": start}]
    data.write_text(json.dumps({**example, "answers": answers}) + "\n")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(folder), "--data", str(data)]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = metrics.squad([record["answer"]], [["Mike Pence"]])
    assert result == {"examples": 1, **expected}
