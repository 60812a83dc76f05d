"""Readers of your own text files (`kerasllm.data.readers`), on small files written here."""

import pytest

from kerasllm import data


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
