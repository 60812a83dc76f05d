"""`kerasllm predict`, `generate` and `evaluate` on tiny saved bundles: the same results as the
Python API (`model.predict`, `model.generate`, `model.evaluate`, `kerasllm.metrics.score`),
JSON Lines in order, empty input, and errors that name the flag."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import kerasllm.tokenizers as kt
from kerasllm import bundle, metrics
from kerasllm.cli import main
from kerasllm.models import (
    CausalLM,
    Decoder,
    Encoder,
    EncoderDecoder,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["a good film", "a bad film", "what a ride", "dull and far too long"]
LABELS = [1, 0, 1, 0]
SENTENCES = [
    "the cat sleeps on the mat",
    "a dog runs in the park",
    "the bird sings in the tree",
    "my friend reads a good book",
]
TINY = dict(num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=32)


@pytest.fixture(scope="module")
def classifier_bundle(tmp_path_factory):
    tokenizer = kt.train_wordpiece(TEXTS * 10, vocabulary_size=60)
    keras.utils.set_random_seed(0)
    encoder = Encoder(vocabulary_size=tokenizer.vocabulary_size, **TINY)
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    path = tmp_path_factory.mktemp("bundles") / "sentiment"
    metadata = {"label_names": ["rotten", "fresh"]}
    return bundle.Bundle(model, {"text": tokenizer}, metadata).save(path)


TAGS = ["O", "B-thing", "I-thing"]


@pytest.fixture(scope="module")
def tagger_bundle(tmp_path_factory):
    tokenizer = kt.train_wordpiece(TEXTS * 10, vocabulary_size=60)
    keras.utils.set_random_seed(3)
    encoder = Encoder(vocabulary_size=tokenizer.vocabulary_size, pooler=False, **TINY)
    model = TokenClassifier(encoder, num_classes=3, dropout=0.0)
    path = tmp_path_factory.mktemp("bundles") / "tagger"
    return bundle.Bundle(model, {"text": tokenizer}, {"label_names": TAGS}).save(path)


@pytest.fixture(scope="module")
def sentencepiece():
    return kt.train_sentencepiece(SENTENCES * 20, vocabulary_size=300)


@pytest.fixture(scope="module")
def causal_bundle(tmp_path_factory, sentencepiece):
    keras.utils.set_random_seed(1)
    model = CausalLM(Decoder(vocabulary_size=sentencepiece.vocabulary_size, **TINY))
    path = tmp_path_factory.mktemp("bundles") / "lm"
    return bundle.Bundle(model, {"text": sentencepiece}).save(path)


@pytest.fixture(scope="module")
def seq2seq_bundle(tmp_path_factory, sentencepiece):
    keras.utils.set_random_seed(2)
    model = Seq2SeqLM(EncoderDecoder(vocabulary_size=sentencepiece.vocabulary_size, **TINY))
    path = tmp_path_factory.mktemp("bundles") / "translate"
    roles = {"source": sentencepiece, "target": sentencepiece}
    return bundle.Bundle(model, roles).save(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------------------------- predict
def test_predict_gives_one_line_per_input_with_the_api_s_label(classifier_bundle, capsys):
    texts = [*TEXTS, ""]  # an empty text is an input like any other
    argv = ["predict", "--model", classifier_bundle, "--batch-size", 2]
    status, out, err = run(capsys, *argv, *[f"--text={t}" for t in texts])
    assert status == 0, err
    records = json_lines(out)
    assert [r["text"] for r in records] == texts
    expected = bundle.load(classifier_bundle).model.predict(texts, verbose=0)
    for record, logits in zip(records, expected):
        probabilities = record["probabilities"]
        assert list(probabilities) == ["rotten", "fresh"]  # the bundle's label_names
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert record["class_id"] == int(np.argmax(logits))
        assert record["label"] == ["rotten", "fresh"][record["class_id"]]
        softmax = np.exp(logits) / np.exp(logits).sum()
        np.testing.assert_allclose(list(probabilities.values()), softmax, atol=1e-5)


def test_predict_reads_a_file_and_writes_the_output_file(classifier_bundle, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    argv = ["predict", "--model", classifier_bundle, "--input", source, "--output", target]
    status, out, _ = run(capsys, *argv, "--batch-size", 3)
    assert status == 0 and out == ""  # results only in the file
    assert [r["text"] for r in json_lines(target.read_text(encoding="utf-8"))] == TEXTS


def test_predict_reads_json_lines_with_jsonl(classifier_bundle, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": TEXTS[0], "id": 7}), json.dumps(TEXTS[1])]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["predict", "--model", classifier_bundle, "--input", source, "--jsonl"]
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    assert [r["text"] for r in json_lines(out)] == TEXTS[:2]
    source.write_text(lines[0] + "\n{not json}\n", encoding="utf-8")
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and "--jsonl: line 2 is not JSON" in err


def test_predict_on_empty_input_prints_nothing(classifier_bundle, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    status, out, err = run(capsys, "predict", "--model", classifier_bundle, "--input", empty)
    assert (status, out) == (0, ""), err


def test_predict_reads_piped_standard_input(classifier_bundle):
    # A subprocess: standard input is a real pipe, as in `cat texts.txt | kerasllm predict`.
    result = subprocess.run(
        [sys.executable, "-m", "kerasllm.cli", "predict", "--model", str(classifier_bundle)],
        input="a good film\nwhat a ride\n",
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    texts = [json.loads(line)["text"] for line in result.stdout.splitlines()]
    assert texts == ["a good film", "what a ride"]


def test_predict_tags_each_word_with_the_api_s_label(tagger_bundle, capsys):
    status, out, err = run(capsys, "predict", "--model", tagger_bundle, "--text", TEXTS[3])
    assert status == 0, err
    [record] = json_lines(out)
    words = TEXTS[3].split()
    # Per-word logits, padded with NaN rows past the last word.
    logits = bundle.load(tagger_bundle).model.predict([TEXTS[3]], verbose=0)[0][: len(words)]
    assert [w["word"] for w in record["words"]] == words
    assert [w["label"] for w in record["words"]] == [TAGS[i] for i in np.argmax(logits, -1)]
    assert all(0 < w["score"] <= 1 for w in record["words"])


def test_predict_refuses_a_generator_and_names_generate(causal_bundle, capsys):
    status, _, err = run(capsys, "predict", "--model", causal_bundle, "--text", "x")
    assert status == 2
    assert "kerasllm predict: error: --model" in err and "use `kerasllm generate`" in err


# --------------------------------------------------------------------------------- generate
@pytest.mark.parametrize("fixture", ["causal_bundle", "seq2seq_bundle"])
def test_generate_equals_model_generate(fixture, request, capsys):
    path = request.getfixturevalue(fixture)
    prompts = ["the cat sleeps", "a dog", ""]
    argv = ["generate", "--model", path, "--max-new-tokens", 5, "--batch-size", 2]
    status, out, err = run(capsys, *argv, *[f"--text={p}" for p in prompts])
    assert status == 0, err
    expected = bundle.load(path).model.generate(prompts, max_new_tokens=5)
    assert json_lines(out) == [{"text": p, "generated": g} for p, g in zip(prompts, expected)]


def test_generate_with_a_seeded_sampler_equals_model_generate(causal_bundle, capsys):
    from kerasllm.generation import TopKSampler

    argv = ["generate", "--model", causal_bundle, "--text", "the bird", "--text", "my friend"]
    argv += ["--sampler", "top_k", "--top-k", 3, "--temperature", 0.7, "--seed", 5]
    status, out, err = run(capsys, *argv, "--max-new-tokens", 4, "--strip-prompt")
    assert status == 0, err
    expected = bundle.load(causal_bundle).model.generate(
        ["the bird", "my friend"],
        max_new_tokens=4,
        sampler=TopKSampler(k=3, temperature=0.7),
        seed=5,
        strip_prompt=True,
    )
    assert [r["generated"] for r in json_lines(out)] == expected


def test_generate_without_repeated_ngrams_equals_model_generate(causal_bundle, capsys):
    from kerasllm.generation import BeamSampler

    argv = ["generate", "--model", causal_bundle, "--text", "the bird", "--text", "my friend"]
    argv += ["--sampler", "beam", "--num-beams", 2, "--no-repeat-ngram-size", 2]
    status, out, err = run(capsys, *argv, "--max-new-tokens", 6)
    assert status == 0, err
    expected = bundle.load(causal_bundle).model.generate(
        ["the bird", "my friend"],
        max_new_tokens=6,
        sampler=BeamSampler(num_beams=2, no_repeat_ngram_size=2),
    )
    assert [r["generated"] for r in json_lines(out)] == expected


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--max-new-tokens", "0"], "--max-new-tokens must be a positive integer"),
        (["--sampler", "top_p", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--sampler", "top_k", "--temperature", "0"], "--temperature must be a positive"),
        (["--no-repeat-ngram-size", "-1"], "--no-repeat-ngram-size must be 0 (off) or positive"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--text", "x", "--input", "f.txt"], "--text or with --input, not both"),
    ],
)
def test_bad_generate_flags_are_named(causal_bundle, capsys, flags, named):
    argv = ["generate", "--model", causal_bundle, *flags]
    if "--text" not in flags:
        argv += ["--text", "x"]
    status, _, err = run(capsys, *argv)
    assert status == 2 and named in err, err


def test_a_missing_model_path_is_reported_as_a_path(tmp_path, capsys):
    status, _, err = run(capsys, "generate", "--model", tmp_path / "nope", "--text", "x")
    assert status == 2
    assert "--model: no directory" in err and "Unknown preset" not in err


def test_a_seq2seq_lm_has_no_prompt_to_strip(seq2seq_bundle, capsys):
    argv = ["generate", "--model", seq2seq_bundle, "--text", "x", "--strip-prompt"]
    status, _, err = run(capsys, *argv)
    assert status == 2 and "--strip-prompt applies to a causal LM only" in err


# --------------------------------------------------------------------------------- evaluate
def test_evaluate_a_classifier_gives_model_evaluate_s_accuracy(classifier_bundle, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    rows = [f'"{t}",{["rotten", "fresh"][y]}' for t, y in zip(TEXTS, LABELS)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    status, out, err = run(capsys, "evaluate", "--model", classifier_bundle, "--data", data)
    assert status == 0, err
    assert "batch 1/1 [====================] 100%" in err and "loss=" in err  # progress: stderr
    result = json.loads(out)
    model = bundle.load(classifier_bundle).model
    model.compile()
    expected = model.evaluate(TEXTS, LABELS, verbose=0, return_dict=True)
    assert result["examples"] == 4
    assert result["accuracy"] == pytest.approx(float(expected["accuracy"]))
    assert result["loss"] == pytest.approx(float(expected["loss"]), rel=1e-5)


def test_evaluate_a_tagger_gives_model_evaluate_s_accuracy(tagger_bundle, tmp_path, capsys):
    words = [text.split() for text in TEXTS]
    tags = [[TAGS[(i + j) % 3] for j in range(len(w))] for i, w in enumerate(words)]
    data = tmp_path / "tags.conll"
    data.write_text(
        "".join("".join(f"{w} {t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in zip(words, tags))
    )
    status, out, err = run(capsys, "evaluate", "--model", tagger_bundle, "--data", data)
    assert status == 0, err
    model = bundle.load(tagger_bundle).model
    model.compile()
    ids = [[TAGS.index(t) for t in ts] for ts in tags]
    expected = model.evaluate(words, ids, verbose=0, return_dict=True)
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(float(expected["accuracy"]))
    assert result["loss"] == pytest.approx(float(expected["loss"]), rel=1e-5)


def test_evaluate_a_causal_lm_gives_loss_and_perplexity(causal_bundle, tmp_path, capsys):
    data = tmp_path / "lines.txt"
    data.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    status, out, err = run(capsys, "evaluate", "--model", causal_bundle, "--data", data)
    assert status == 0, err
    model = bundle.load(causal_bundle).model
    model.compile()
    expected = float(model.evaluate(SENTENCES, verbose=0, return_dict=True)["loss"])
    result = json.loads(out)
    assert result["examples"] == 4
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["perplexity"] == pytest.approx(np.exp(expected), rel=1e-5)


def test_evaluate_refuses_labels_the_model_does_not_know(classifier_bundle, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\na good film,great\n", encoding="utf-8")
    status, _, err = run(capsys, "evaluate", "--model", classifier_bundle, "--data", data)
    assert status == 2
    assert "--data" in err and "['great']" in err and "['rotten', 'fresh']" in err


def test_evaluate_a_seq2seq_lm_gives_metrics_score_of_its_outputs(seq2seq_bundle, tmp_path, capsys):
    data = tmp_path / "pairs.tsv"
    pairs = [(s, s.upper()) for s in SENTENCES]
    data.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    argv = ["evaluate", "--model", seq2seq_bundle, "--data", data, "--max-new-tokens", 6]
    status, out, err = run(capsys, *argv, "--max-examples", 3)
    assert status == 0, err
    outputs = bundle.load(seq2seq_bundle).model.generate(SENTENCES[:3], max_new_tokens=6)
    references = [t for _, t in pairs[:3]]
    expected = {**metrics.score(outputs, references), **metrics.rouge(outputs, references)}
    assert json.loads(out) == {"examples": 3, **expected}


def test_evaluate_s_default_output_length_is_the_bundle_s_target_length(seq2seq_bundle):
    from kerasllm.cli import evaluate
    from kerasllm.cli._inference import Loaded

    model = bundle.load(seq2seq_bundle).model
    assert evaluate.default_max_new_tokens(Loaded(model, {"target_length": 20})) == 19
    # No metadata: what the positions allow (TINY max_sequence_length=32, minus the start).
    assert evaluate.default_max_new_tokens(Loaded(model, {})) == 31


def test_evaluate_names_a_corpus_without_the_model_s_data(classifier_bundle, capsys):
    status, _, err = run(capsys, "evaluate", "--model", classifier_bundle, "--data", "bible")
    assert status == 2 and "--data 'bible' has no classification data" in err
