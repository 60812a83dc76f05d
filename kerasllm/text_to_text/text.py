"""Text helpers for text-to-text models: cleaning, and splitting over-long input into sentences."""

from __future__ import annotations

import re
import unicodedata

# Sentence ends: . ! ? ; : followed by space, keeping the punctuation with its sentence; also
# when a closing quote or bracket follows the mark (`He said, "Go." Then...`), ASCII or
# typographic (the source tokenizer maps typography later; splitting sees the raw text).
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[.!?;:][\"'\u2019\u201d\u00bb)\]])\s+")
# Clause breaks used when one sentence alone is still too long.
_CLAUSE_BREAK = re.compile(r"(?<=[,])\s+")


def clean(text: str) -> str:
    """Drops control and format characters (keeping spaces), normalizes to NFC, collapses spaces."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    return " ".join(text.split())


def split_to_fit(text: str, fits) -> list[str]:
    """Splits `text` into consecutive pieces for which `fits(piece)` holds.

    Splits at sentence ends first, then at commas, then between words; a single word that does not
    fit is returned as is (the caller truncates it). Joining the pieces with spaces gives back the
    text.

    Example:
    >>> split_to_fit("One. Two, three. Four", lambda s: len(s) <= 10)
    ['One.', 'Two,', 'three.', 'Four']
    """
    if fits(text):
        return [text]
    for pattern in (_SENTENCE_END, _CLAUSE_BREAK, re.compile(r"\s+")):
        parts = [p for p in pattern.split(text) if p]
        if len(parts) > 1:
            return _pack(parts, fits)
    return [text]


def _pack(parts: list[str], fits) -> list[str]:
    """Greedily joins neighbouring parts while they fit; recurses into parts too long alone."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current} {part}" if current else part
        if fits(candidate):
            current = candidate
            continue
        if current:
            pieces.append(current)
        if fits(part):
            current = part
        else:
            pieces.extend(split_to_fit(part, fits))
            current = ""
    if current:
        pieces.append(current)
    return pieces
