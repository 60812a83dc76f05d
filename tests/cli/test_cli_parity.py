"""Issue 25's parity target: `kerasllm generate` / `evaluate` on the shipped translation bundle,
and `kerasllm predict` / `evaluate` on a classifier fine-tuned by `kerasllm finetune`, give what
the Python API gives (`model.generate`, `kerasllm.metrics.score`, `model.predict`,
`model.evaluate`)."""

import json
from pathlib import Path

import numpy as np
import pytest

from kerasllm import bundle, metrics
from kerasllm.cli import main
from kerasllm.testing import synthetic_reviews

SHIPPED = Path(__file__).resolve().parents[2] / "kerasllm" / "zoo" / "shipped" / "translate_en_fr"
PAIRS = [
    ("The Lord is my shepherd.", "L'Éternel est mon berger."),
    ("Love your neighbor as yourself.", "Tu aimeras ton prochain comme toi-même."),
    ("The king sent messengers to the city.", "Le roi envoya des messagers à la ville."),
]


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow  # decoding with the shipped transformer_small (about 30 s on 2 idle cores)
def test_generate_and_evaluate_on_the_shipped_translation_bundle(tmp_path, capsys):
    sources = [source for source, _ in PAIRS]
    model = bundle.load(SHIPPED).model
    expected = model.generate(sources, max_new_tokens=24)

    status, out, err = run(
        capsys, "generate", "--model", SHIPPED, "--max-new-tokens", 24,
        *[f"--text={s}" for s in sources],
    )  # fmt: skip
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [{"text": s, "generated": g} for s, g in zip(sources, expected)]
    assert all(g.strip() for g in expected)  # a trained model: real translations

    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    argv = ["evaluate", "--model", SHIPPED, "--data", data, "--max-new-tokens", 24]
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    result = json.loads(out)
    assert result["examples"] == 3
    for name, value in metrics.score(expected, [t for _, t in PAIRS]).items():
        assert result[name] == pytest.approx(value), name


@pytest.mark.slow  # a `kerasllm finetune` run first (about 30 s on 2 cores)
def test_predict_and_evaluate_on_a_classifier_fine_tuned_by_the_cli(tmp_path, capsys):
    texts, labels = synthetic_reviews(count=120)
    names = ["bad", "good"]
    data = tmp_path / "reviews.csv"
    rows = [f'"{t}",{names[y]}' for t, y in zip(texts, labels)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    model_dir = tmp_path / "run"
    status, _, err = run(
        capsys, "finetune", "--model", "bert_tiny", "--objective", "classification",
        "--data", data, "--model-dir", model_dir, "--steps", 20, "--batch-size", 8,
        "--sequence-length", 32, "--vocabulary-size", 400, "--set", "num_layers=1",
        "--set", "hidden_dim=16", "--set", "intermediate_dim=32", "--verbose", 0,
    )  # fmt: skip
    assert status == 0, err
    path = model_dir / "bundle"
    loaded = bundle.load(path)
    probabilities = np.asarray(loaded.model.predict(texts[:6], verbose=0))

    status, out, err = run(capsys, "predict", "--model", path, *[f"--text={t}" for t in texts[:6]])
    assert status == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    label_names = loaded.metadata.get("label_names") or ["0", "1"]
    assert [r["label"] for r in results] == [label_names[i] for i in probabilities.argmax(-1)]

    status, out, err = run(capsys, "evaluate", "--model", path, "--data", data)
    assert status == 0, err
    model = loaded.model
    model.compile()
    position = {name: i for i, name in enumerate(label_names)}
    ids = [position[names[y]] for y in labels]
    expected = model.evaluate(texts, ids, verbose=0, return_dict=True)
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(float(expected["accuracy"]))
    assert result["loss"] == pytest.approx(float(expected["loss"]), rel=1e-5)
