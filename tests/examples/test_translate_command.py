"""`examples/translate.py`, the README's first command: the built-in sentences, piped input
(one line out per line in, any bytes, any locale), --eval and --update_card, and its errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_default_demo_run_translates_the_built_in_sentences():
    """`make demo`: the built-in sentences through the shipped model, EN/FR lines on stdout."""
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
    assert pairs[:2] == [
        "EN: In the beginning God created the heavens and the earth.",
        "FR: Au commencement, Dieu créa les cieux et la terre.",
    ]
    assert all(len(line) > 4 for line in pairs)
    # TensorFlow's start-up log lines (absl notice, oneDNN, CUDA stub) are filtered out.
    for marker in ("absl::InitializeLog", "oneDNN", "cudart", "cuInit"):
        assert marker not in result.stderr, result.stderr[-2000:]


def test_example_pipes_one_line_per_input_line(tiny_bundle):
    """stdin mode: exactly one output line per input line, nothing else on stdout."""
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tiny_bundle),
         "--max_length", "4"],
        input="the king\n\nle roi dit\n",
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 4  # three lines, each newline-terminated
    assert lines[1] == ""


def test_example_pipes_any_bytes_one_line_each_as_utf8_in_any_locale():
    """Undecodable bytes, blank lines, Windows line ends and a last line without a newline:
    one UTF-8 line out per line in, one warning, under an ASCII locale (which once raised
    UnicodeDecodeError on the first byte, or UnicodeEncodeError on the first accent)."""
    source = b"\xff\xfe bad\n\nWhere is the house?\r\n  \nLove your neighbor as yourself."
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py")],
        input=source,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"},
        timeout=300,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr[-2000:]
    lines = result.stdout.decode("utf-8").split("\n")  # strict: the output is UTF-8
    assert len(lines) == 6 and lines[-1] == ""  # five lines, each newline-terminated
    assert lines[1] == "" and lines[3] == ""  # blank (or blank-looking) lines stay blank
    assert lines[0] and "maison" in lines[2] and lines[4]
    assert any(ord(c) > 127 for c in result.stdout.decode("utf-8"))  # French, not escaped
    assert stderr.count("standard input is not valid UTF-8") == 1


def test_example_translates_an_empty_pipe_to_nothing(tiny_bundle):
    # 0 lines in, 0 lines out: a pipeline once got the built-in sentences (15 lines).
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tiny_bundle)],
        input=b"",
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == b""


def test_example_eval_scores_greedy_and_beam_search(tiny_bundle, tmp_path):
    out = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--eval", "--model",
         str(tiny_bundle), "--eval_limit", "3", "--eval_beams", "2", "--max_length", "4",
         "--length_penalty", "0.6", "--eval_output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(out.read_text())
    beam = ", beam 2, length penalty 0.6"
    assert list(reports) == ["test", "validation", "test" + beam, "validation" + beam]
    assert reports["test"]["settings"]["beams"] == 1
    assert "length_penalty" not in reports["test"]["settings"]  # greedy: no length penalty
    assert reports["test" + beam]["settings"]["beams"] == 2
    assert reports["test" + beam]["settings"]["length_penalty"] == 0.6
    assert all(r["verses"] == 3 for r in reports.values())


def test_example_eval_update_card_rewrites_the_bundles_card(tiny_bundle, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_bundle, model)
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--eval", "--update_card",
         "--model", str(model), "--eval_limit", "2", "--eval_beams", "1", "--max_length", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout)
    assert json.loads((model / "eval.json").read_text()) == reports
    card = (model / "MODEL_CARD.md").read_text()
    for split in ("test", "validation"):
        row = f"| {split} | 2 | {reports[split]['bleu']} | {reports[split]['chrf']} |"
        assert row in card


def test_example_reports_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tmp_path)],
        input="",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "No translation model" in result.stderr
