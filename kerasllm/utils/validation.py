"""Validation helpers shared by every layer of the package (at the bottom of the layering: this
module imports no other kerasllm module, so a sampler or an objective can use them without
loading the models)."""

from __future__ import annotations

import difflib
import math
import numbers
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


def is_int(value) -> bool:
    """A Python or numpy integer, not a bool (True would silently mean 1 or token 1).

    Example:
    >>> is_int(3), is_int(True), is_int(3.0)
    (True, False, False)
    """
    # numpy integers register as numbers.Integral; numpy's bool does not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_real(value) -> bool:
    """A finite real number (numpy scalars included), not a bool.

    Example:
    >>> is_finite_real(0.5), is_finite_real(float("nan")), is_finite_real(True)
    (True, False, False)
    """
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
