"""kerasllm.utils.files: confinement, atomic writes, JSON errors that name the file."""

from __future__ import annotations

import os

import pytest

from kerasllm.utils import files


def test_resolve_inside_accepts_names_below_the_root(tmp_path):
    (tmp_path / "sub").mkdir()
    assert files.resolve_inside(tmp_path, "sub/vocab.txt") == (tmp_path / "sub/vocab.txt").resolve()
    assert files.resolve_inside(tmp_path, "./a/../b.txt") == (tmp_path / "b.txt").resolve()


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", "", "a\x00b"])
def test_resolve_inside_refuses_names_that_leave_the_root(tmp_path, name):
    with pytest.raises(ValueError) as error:
        files.resolve_inside(tmp_path, name, what="tokenizer file")
    assert "tokenizer file" in str(error.value)
    if name:
        assert repr(name) in str(error.value)


def test_resolve_inside_refuses_a_symlink_pointing_out(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "vocab.txt")
    with pytest.raises(ValueError, match="'vocab.txt' resolves outside"):
        files.resolve_inside(root, "vocab.txt")


def test_resolve_inside_refuses_non_strings(tmp_path):
    with pytest.raises(ValueError, match="non-empty relative path"):
        files.resolve_inside(tmp_path, 5)  # type: ignore[arg-type]


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "config.json"
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2, "é": "ü"})
    assert files.read_json(path) == {"a": 2, "é": "ü"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.atomic_path(path) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.h5"]


def test_read_json_names_the_file_it_cannot_parse(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{\n  "kind": "wordpiece",\n  "files": {')
    with pytest.raises(ValueError, match=r"tokenizer\.json is not valid JSON"):
        files.read_json(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="not UTF-8"):
        files.read_json(path)
