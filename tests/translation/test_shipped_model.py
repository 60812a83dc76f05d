"""The model in saved_models/translate_en_fr: present, documented, and as good as its card says."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kerasllm.translation import Translator, evaluate

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "saved_models" / "translate_en_fr"


@pytest.fixture(scope="module")
def translator():
    return Translator(SHIPPED)


def test_the_shipped_model_has_its_card_and_evaluation():
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    report = json.loads((SHIPPED / "eval.json").read_text())
    assert report["test"]["verses"] == 996 and report["validation"]["verses"] == 313
    assert f"| test | 996 | {report['test']['bleu']} | {report['test']['chrf']} |" in card
    weights = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert weights < 60 * 2**20


def test_the_shipped_model_translates_test_verses_as_its_card_says(translator):
    # The first 48 test verses, greedy: the card's figures come from the same decoder over all
    # 996, so these must be in the same range (a broken load or tokenizer scores near 0).
    full = json.loads((SHIPPED / "eval.json").read_text())["test"]
    report = evaluate(translator.translate, "test", limit=48)
    assert report["bleu"] > 0.5 * full["bleu"]
    assert report["chrf"] > 0.8 * full["chrf"]


def test_default_demo_run_translates_the_built_in_sentences():
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = [line for line in result.stdout.splitlines() if line.startswith(("EN: ", "FR: "))]
    assert len(pairs) == 10
    assert all(len(line) > 4 for line in pairs)
