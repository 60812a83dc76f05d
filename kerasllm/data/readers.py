"""Readers for your own text files: one text per line, tab-separated pairs, labelled CSV (single
texts or sentence pairs), CoNLL columns. UTF-8 throughout; bytes that are not UTF-8 become
U+FFFD instead of raising."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence


def _open_text(path: str | os.PathLike):
    return open(path, encoding="utf-8", errors="replace", newline="")


def read_lines(path: str | os.PathLike, skip_empty: bool = True) -> list[str]:
    """Reads one text per line (UTF-8; invalid bytes become U+FFFD).

    Args:
        path: a text file.
        skip_empty: drop empty and whitespace-only lines.

    Returns:
        The lines without their line endings.
    """
    with _open_text(path) as f:
        lines = [line.rstrip("\r\n") for line in f]
    return [line for line in lines if line.strip()] if skip_empty else lines


def read_tsv_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Reads `source<TAB>target` sentence pairs, one per line.

    Lines without a tab, or with an empty side, are skipped.
    """
    pairs = []
    for line in read_lines(path):
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip() and parts[1].strip():
            pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def read_csv_labels(
    path: str | os.PathLike,
    label_column: str = "label",
    text_column: str = "text",
    label_vocabulary: Sequence[str] | None = None,
) -> tuple[list[str], list[int], list[str]]:
    """Reads a CSV file with a header, a label column and a text column.

    Args:
        path: the CSV file.
        label_column: header name of the label column.
        text_column: header name of the text column.
        label_vocabulary: label names in id order; by default the sorted distinct labels.

    Returns:
        `(texts, label_ids, label_vocabulary)`. Rows with an empty text are skipped.
    """
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or {label_column, text_column} - set(reader.fieldnames):
            raise ValueError(
                f"{path}: needs columns {label_column!r} and {text_column!r}; "
                f"found {reader.fieldnames}."
            )
        rows = [
            (r[text_column].strip(), r[label_column].strip())
            for r in reader
            if (r[text_column] or "").strip()
        ]
    labels = list(label_vocabulary) if label_vocabulary else sorted({lab for _, lab in rows})
    unknown = {lab for _, lab in rows} - set(labels)
    if unknown:
        raise ValueError(f"{path}: labels {sorted(unknown)} are not in {labels}.")
    index = {lab: i for i, lab in enumerate(labels)}
    return [t for t, _ in rows], [index[lab] for _, lab in rows], labels


def read_csv_pair_labels(
    path: str | os.PathLike,
    label_column: str = "label",
    text_columns: tuple[str, str] = ("text_a", "text_b"),
    label_vocabulary: Sequence[str] | None = None,
) -> tuple[tuple[list[str], list[str]], list[int], list[str]]:
    """Reads a CSV file of labelled sentence pairs (a header with two text columns and a label
    column), e.g. `text_a,text_b,label` for entailment or paraphrase data.

    Args:
        path: the CSV file.
        label_column: header name of the label column.
        text_columns: header names of the first and second text of each pair.
        label_vocabulary: label names in id order; by default the sorted distinct labels.

    Returns:
        `((texts_a, texts_b), label_ids, label_vocabulary)`: the pairs in the form
        `kerasllm.data.classification_dataset` and `SequenceClassifier.fit` take them. Rows
        with an empty first or second text are skipped.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
    >>> _ = open(path, "w").write("text_a,text_b,label\\nIt rains.,It is wet.,yes\\nHi.,,no\\n")
    >>> read_csv_pair_labels(path)
    ((['It rains.'], ['It is wet.']), [0], ['yes'])
    """
    first, second = text_columns
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or {label_column, first, second} - set(reader.fieldnames):
            raise ValueError(
                f"{path}: sentence pairs need columns {first!r}, {second!r} and "
                f"{label_column!r}; found {reader.fieldnames}."
            )
        rows = [
            (r[first].strip(), r[second].strip(), (r[label_column] or "").strip())
            for r in reader
            if (r[first] or "").strip() and (r[second] or "").strip()
        ]
    labels = list(label_vocabulary) if label_vocabulary else sorted({r[2] for r in rows})
    unknown = {r[2] for r in rows} - set(labels)
    if unknown:
        raise ValueError(f"{path}: labels {sorted(unknown)} are not in {labels}.")
    index = {lab: i for i, lab in enumerate(labels)}
    pairs = ([r[0] for r in rows], [r[1] for r in rows])
    return pairs, [index[r[2]] for r in rows], labels


def csv_columns(path: str | os.PathLike) -> list[str]:
    """The header names of a CSV file ([] for an empty file)."""
    with _open_text(path) as f:
        return list(csv.DictReader(f).fieldnames or [])


def read_conll(
    path: str | os.PathLike, token_column: int = 0, tag_column: int = -1
) -> tuple[list[list[str]], list[list[str]]]:
    """Reads CoNLL-style columns: one token per line, blank lines between sentences.

    Args:
        path: the file; columns are separated by tabs or spaces.
        token_column: index of the token column.
        tag_column: index of the tag column (default: the last one).

    Returns:
        `(tokens, tags)`: one list per sentence. `-DOCSTART-` lines are ignored.
    """
    sentences, tags, cur_tok, cur_tag = [], [], [], []
    with _open_text(path) as f:
        for line in f:
            cols = line.split()
            if not cols:
                if cur_tok:
                    sentences.append(cur_tok)
                    tags.append(cur_tag)
                cur_tok, cur_tag = [], []
                continue
            if cols[0] == "-DOCSTART-":
                continue
            if len(cols) < 2:
                raise ValueError(f"{path}: a line has fewer than 2 columns: {line!r}")
            cur_tok.append(cols[token_column])
            cur_tag.append(cols[tag_column])
    if cur_tok:
        sentences.append(cur_tok)
        tags.append(cur_tag)
    return sentences, tags
