"""Tests of the English-to-French application in examples/ (not part of the library).

examples/ goes first on `sys.path`, as for `python examples/translate.py`, so that the
application imports as the package `translation`."""

import sys
from pathlib import Path

import pytest

from kerasllm.testing import tiny_translation_bundle

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "examples") not in sys.path:
    sys.path.insert(0, str(REPO / "examples"))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A tiny untrained translation bundle (decodes nonsense, quickly)."""
    path = tmp_path_factory.mktemp("bundle") / "b"
    tiny_translation_bundle(path)
    return path
