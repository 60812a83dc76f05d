"""`kerasllm compress quantize`: the new bundle, its report and model card, and errors."""

from __future__ import annotations

import json

import pytest

from kerasllm import bundle, compression, testing, tokenizers
from kerasllm.cli import compress, main
from kerasllm.models import Encoder, SequenceClassifier

TEXTS = ["what a good film", "what a bad film", "the cat sat on the mat", "a dog ran"]


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    tok = tokenizers.train_wordpiece(TEXTS * 10, vocabulary_size=80)
    model = SequenceClassifier(
        Encoder(
            **testing.tiny_config(
                num_layers=1, max_sequence_length=16, vocabulary_size=tok.vocabulary_size
            ),
            pooler=True,
        ),
        num_classes=2,
        dropout=0.0,
    )
    folder = tmp_path_factory.mktemp("float") / "bundle"
    bundle.Bundle(model, {"text": tok}, {"sequence_length": 10}).save(folder)
    (folder / "MODEL_CARD.md").write_text("# A tiny sentiment model\n", encoding="utf-8")
    return folder


def test_quantize_writes_the_bundle_report_and_model_card(classifier_folder, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(TEXTS)), encoding="utf-8"
    )
    out = tmp_path / "int8"
    status = main(
        [
            "compress",
            "quantize",
            "--model",
            str(classifier_folder),
            "--output",
            str(out),
            "--data",
            str(data),
            "--benchmark-size",
            "3",
            "--repeats",
            "1",
            "--batch-size",
            "2",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / compress.REPORT_JSON).read_text("utf-8"))
    assert report["compression"]["mode"] == "int8"
    sizes = report["weights_file_bytes"]
    assert sizes["compressed"] == compression.weights_file_size(out) < sizes["original"]
    assert report["parameters"]["compressed"]["bytes"] < report["parameters"]["original"]["bytes"]
    for name in ("original", "compressed"):
        assert report["quality"][name]["examples"] == len(TEXTS)
        assert 0.0 <= report["quality"][name]["accuracy"] <= 1.0
        assert report["cpu"][name]["seconds"] > 0
    assert report["cpu"]["examples"] == 3
    loaded = bundle.load(out)
    assert loaded.metadata["compression"][-1]["mode"] == "int8"
    assert set(compression.quantized_layers(loaded.model).values()) == {"int8"}
    card = (out / "MODEL_CARD.md").read_text("utf-8")
    assert card.startswith("# Compression report") and "# A tiny sentiment model" in card
    assert "| weights file (bytes) |" in (out / compress.REPORT_MARKDOWN).read_text("utf-8")


def test_errors_name_the_flag(classifier_folder, tmp_path, capsys):
    base = ["compress", "quantize", "--output", str(tmp_path / "q")]
    assert main([*base, "--model", str(classifier_folder), "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
    assert main([*base, "--model", "bert_tiny"]) == 2
    assert "not a saved task-model bundle" in capsys.readouterr().err
    same = ["compress", "quantize", "--model", str(classifier_folder)]
    assert main([*same, "--output", str(classifier_folder), "--benchmark-size", "0"]) == 2
    assert "--output must differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--model", str(classifier_folder), "--mode", "int3"])
