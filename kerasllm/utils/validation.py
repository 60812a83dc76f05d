"""Validation helpers shared by every layer of the package (at the bottom of the layering: this
module imports no other kerasllm module, so a sampler or an objective can use them without
loading the models)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint for a misspelled name, or '' when nothing is close.

    Example:
    >>> closest("gredy", ["greedy", "beam"])
    " Did you mean 'greedy'?"
    >>> closest("xyz", ["greedy", "beam"])
    ''
    """
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
