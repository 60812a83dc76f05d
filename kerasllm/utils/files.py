"""Safe file handling for everything kerasllm reads or writes.

Three rules, one place each (see `docs/security.md`):

- **Confinement.** A file named by a data file (a bundle's `bundle.json`, a tokenizer's
  `tokenizer.json`, a preset, a checkpoint index) must resolve inside the directory that data
  file belongs to, after symbolic links are resolved: `resolve_inside`.
- **Atomic writes.** A file is written beside its destination and renamed over it, so a crash
  leaves the old file or the new one, never half of one: `atomic_write_text`,
  `atomic_write_bytes`, `atomic_path`.
- **Errors that name the file.** A JSON file that does not parse is reported with its path:
  `read_json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def resolve_inside(root: str | os.PathLike, name: str | os.PathLike, what: str = "file") -> Path:
    """Resolves `name` relative to `root`, refusing anything that leaves `root`.

    Args:
        root: the directory the name belongs to.
        name: a relative path taken from a data file.
        what: what the name is, for the error message (e.g. "tokenizer folder").

    Returns:
        The resolved absolute path (symbolic links followed), inside `root`.

    Raises:
        ValueError: `name` is not a non-empty string, is absolute, or resolves (through `..`
            or symbolic links) outside `root`. The message names the offending name.

    Example:

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> resolve_inside(root, "vocab.txt").name
    'vocab.txt'
    >>> resolve_inside(root, "../etc/passwd")
    Traceback (most recent call last):
    ...
    ValueError: The file '../etc/passwd' resolves outside its directory ...
    """
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise ValueError(f"A {what} name must be a non-empty relative path. Received: {name!r}")
    text = os.fspath(name)
    if "\x00" in text:
        raise ValueError(f"The {what} name {text!r} contains a NUL character.")
    if os.path.isabs(text) or Path(text).drive:
        raise ValueError(
            f"The {what} {text!r} is an absolute path; only names relative to "
            f"{os.fspath(root)!r} are accepted."
        )
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target != base and base not in target.parents:
        raise ValueError(
            f"The {what} {text!r} resolves outside its directory {os.fspath(root)!r} "
            f"(to {os.fspath(target)!r}); refused."
        )
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds.

    For writers that take a file name (h5py, Keras `save_weights`). On an error the temporary
    file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.remove(temporary)  # writers create the file themselves (some refuse to overwrite)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically (written beside it, flushed, then renamed)."""
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any, **dump_options: Any) -> Path:
    """Writes `data` as indented UTF-8 JSON (plus a final newline) to `path`, atomically."""
    options = {"indent": 2, "ensure_ascii": False, **dump_options}
    return atomic_write_text(path, json.dumps(data, **options) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Reads a JSON file; a file that does not parse raises `ValueError` naming it.

    Example:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.json")
    >>> _ = open(path, "w").write('{"a": ')
    >>> read_json(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...broken.json is not valid JSON (truncated or corrupt?): ...
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {os.fspath(path)} is not UTF-8 text: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{what} {os.fspath(path)} is not valid JSON (truncated or corrupt?): {error}"
        ) from None
