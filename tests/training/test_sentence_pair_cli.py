"""Sentence pairs through the command line: `kerasllm finetune` on a text_a,text_b,label CSV and
`kerasllm predict` with --text-pair / JSON Lines pairs; `kerasllm pretrain --next-sentence-
prediction` (MLM + NSP) and fine-tuning from its checkpoint. Tiny models on synthetic text."""

import csv
import json

import pytest

from kerasllm import bundle
from kerasllm.cli import main
from kerasllm.testing import synthetic_reviews, synthetic_text_samples

TINY_MODEL = ["--set", "num_layers=1", "--set", "hidden_dim=16", "--set", "intermediate_dim=32"]
TINY_RUN = ["--batch-size", "8", "--sequence-length", "32", "--verbose", "0"]


def _pair_csv(path, count=120):
    """Pairs of made-up reviews labelled "same" when both have the same polarity."""
    texts, labels = synthetic_reviews(2 * count, seed=1)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text_a", "text_b", "label"])
        for i in range(count):
            a, b = 2 * i, 2 * i + 1
            same = "same" if labels[a] == labels[b] else "different"
            writer.writerow([texts[a], texts[b], same])


@pytest.fixture(scope="module")
def pair_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    data = folder / "pairs.csv"
    _pair_csv(data)
    model_dir = folder / "run"
    args = ["finetune", "--model", "bert_tiny", "--objective", "classification"]
    args += ["--data", str(data), "--model-dir", str(model_dir), "--steps", "3"]
    assert main([*args, *TINY_MODEL, *TINY_RUN, "--vocabulary-size", "400"]) == 0
    results = json.loads((model_dir / "results.json").read_text())
    return model_dir / "bundle", results


def test_finetune_reads_pairs_and_frames_them_with_segment_ids(pair_bundle):
    path, results = pair_bundle
    assert 0.0 <= results["eval"]["accuracy"] <= 1.0
    loaded = bundle.load(str(path))
    assert loaded.metadata["label_names"] == ["different", "same"]
    x = loaded.model.preprocessor((["dull film"], ["warm music"]))
    segments = x["segment_ids"].numpy()[0]
    assert set(segments.tolist()) == {0, 1}  # the second text is segment 1


def test_predict_takes_text_pairs_and_jsonl_pairs(pair_bundle, tmp_path, capsys):
    path, _ = pair_bundle
    assert main(["predict", "--model", str(path), "--text", "dull", "--text-pair", "warm"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text_a"] == "dull" and record["text_b"] == "warm"
    assert record["label"] in ("different", "same")
    assert abs(sum(record["probabilities"].values()) - 1) < 1e-5
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        json.dumps({"text_a": "dull", "text_b": "warm"})
        + "\n"
        + json.dumps({"text": "a single text"})
        + "\n"
    )
    assert main(["predict", "--model", str(path), "--jsonl", "--input", str(lines)]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    # Same pair, same probabilities, whatever the input form; single texts still work.
    assert first["probabilities"] == pytest.approx(record["probabilities"], abs=1e-6)
    assert second["text"] == "a single text" and "text_a" not in second
    assert main(["predict", "--model", str(path), "--text", "a", "--text", "b", "--text-pair", "c"])
    assert "2 --text but 1 --text-pair" in capsys.readouterr().err


def test_evaluate_reads_the_pair_csv(pair_bundle, tmp_path, capsys):
    path, _ = pair_bundle
    data = tmp_path / "pairs.csv"
    _pair_csv(data, count=20)
    assert main(["evaluate", "--model", str(path), "--data", str(data), "--max-examples", "9"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 9 and 0.0 <= result["accuracy"] <= 1.0


@pytest.mark.slow  # two training runs (about 20 s on an idle 2-core machine)
def test_pretrain_with_next_sentence_prediction_then_finetune_from_it(tmp_path, capsys):
    # 45 made-up articles, one per line: every 20th is held out (3 evaluation documents).
    documents = [
        doc for seed in range(3) for doc in synthetic_text_samples(count=1, seed=seed)["news"]
    ]
    corpus = tmp_path / "news.txt"
    corpus.write_text("\n".join(documents) + "\n")
    pretrained = tmp_path / "nsp"
    args = ["pretrain", "--model", "bert_tiny", "--objective", "masked_lm", "--data", str(corpus)]
    args += ["--next-sentence-prediction", "--model-dir", str(pretrained), "--steps", "3"]
    assert main([*args, *TINY_MODEL, *TINY_RUN, "--vocabulary-size", "500"]) == 0
    results = json.loads((pretrained / "results.json").read_text())
    assert 0.0 <= results["eval"]["nsp_accuracy"] <= 1.0 and "accuracy" in results["eval"]
    loaded = bundle.load(str(pretrained / "bundle"))
    assert loaded.model.next_sentence_prediction and loaded.metadata["next_sentence_prediction"]

    data = tmp_path / "pairs.csv"
    _pair_csv(data, count=60)
    tuned = tmp_path / "tuned"
    args = ["finetune", "--model", "bert_tiny", "--objective", "classification"]
    args += ["--data", str(data), "--model-dir", str(tuned), "--steps", "2"]
    args += ["--init-from", str(pretrained), "--tokenizer", str(pretrained / "tokenizer")]
    assert main([*args, *TINY_MODEL, *TINY_RUN, "--verbose", "2"]) == 0
    out = capsys.readouterr().out
    # The encoder's variables load by path; the MLM and NSP heads have no place in a classifier.
    assert f"from {pretrained}" in out
    loaded_line = next(line for line in out.splitlines() if line.startswith("Initialized"))
    loaded_count, total = (int(n) for n in loaded_line.split()[1].split("/"))
    assert loaded_count >= 10 and loaded_count < total


def test_next_sentence_prediction_needs_masked_lm(tmp_path, capsys):
    corpus = tmp_path / "news.txt"
    corpus.write_text("One. Two.\nThree. Four.\n")
    args = ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--data", str(corpus)]
    args += ["--next-sentence-prediction", "--model-dir", str(tmp_path / "run"), "--steps", "1"]
    assert main([*args, *TINY_MODEL, *TINY_RUN])
    assert "--next-sentence-prediction trains masked_lm" in capsys.readouterr().err
