"""Tests of the English-to-French application in examples/ (not part of the library).

examples/ goes first on `sys.path`, as for `python examples/translate.py`, so that the
application imports as the package `translation`."""

import sys
from pathlib import Path

import pytest

from kerasllm import bundle, tokenizers, zoo

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "examples") not in sys.path:
    sys.path.insert(0, str(REPO / "examples"))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A tiny untrained translation bundle (decodes nonsense, quickly)."""
    texts = ["the king said to the people", "le roi dit au peuple"] * 30
    tok = tokenizers.train_sentencepiece(texts, vocabulary_size=300)
    model = zoo.get(
        "transformer_tiny", task="seq2seq_lm", vocabulary_size=tok.vocabulary_size, weights=None
    )
    path = tmp_path_factory.mktemp("bundle") / "b"
    bundle.Bundle(
        model, {"source": tok, "target": tok}, {"source_length": 12, "target_length": 6}
    ).save(path)
    return path
