from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    """`tests/fixtures`: reference outputs written by scripts/make_minilm_reference.py."""
    return FIXTURES
