"""Typographic punctuation mapped to the plain forms that training text uses, as TensorFlow ops.

Users paste text from word processors, web pages and phones: curly apostrophes and quotes
(’ ‘ “ ”), no-break and thin spaces, en and em dashes, the ellipsis character, fullwidth
forms. Training corpora such as the project's Bible versions use ASCII punctuation only, so a
tokenizer sees these characters as unknown or as byte pieces the model never learned, and
the output degrades (see docs/data.md, "Typographic punctuation"). `unify_typography` maps
them to their ASCII counterparts.

It is one function of TensorFlow ops, so the same mapping runs in `tf.data` pipelines, in
eager code and inside exported SavedModels; `Tokenizer.tokenize` applies it when the
tokenizer's `unify_typography` option is on (recorded in `tokenizer.json`), which keeps
training data, Python inference and served graphs in agreement.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Single-character mappings: {code point: replacement code point}. Why each group:
#: - apostrophes and single quotation marks (’ ‘ ‚ ‛, the modifier letter apostrophe ʼ that
#:   some keyboards type) -> "'";
#: - double quotation marks (“ ” „ ‟) -> '"';
#: - hyphens, the en dash, the figure dash and the minus sign (‐ ‑ ‒ – − ﹣) -> "-" (the em dash
#:   and the horizontal bar become "--", see `EM_DASH`);
#: - every Unicode space separator other than U+0020 (no-break, narrow no-break, thin, en,
#:   em, ideographic, ...) -> " ".
#: Left alone on purpose: guillemets « » ‹ › (real punctuation of French and other languages,
#: not a look-alike of an ASCII mark), primes ′ ″ (units), zero-width and other format
#: characters (tokenizers and `TextToText` drop those already).
SINGLE_CHARACTER_MAP: dict[int, int] = {
    **dict.fromkeys((0x2018, 0x2019, 0x201A, 0x201B, 0x02BC), ord("'")),
    **dict.fromkeys((0x201C, 0x201D, 0x201E, 0x201F), ord('"')),
    **dict.fromkeys((0x2010, 0x2011, 0x2012, 0x2013, 0x2212, 0xFE63), ord("-")),
    **dict.fromkeys((0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000), ord(" ")),
}
#: Fullwidth forms of ASCII ! to ~ (U+FF01..U+FF5E) map to U+0021..U+007E, as NFKC does.
FULLWIDTH_FIRST, FULLWIDTH_LAST, FULLWIDTH_OFFSET = 0xFF01, 0xFF5E, 0xFEE0
ELLIPSIS = "\u2026"
#: Em dash, horizontal bar and small em dash: "--", the ASCII form that plain-text corpora use
#: (the World English Bible writes "garments -- the holy garments"); a single "-" would read as
#: a hyphen joining two words.
EM_DASH = r"[\x{2014}\x{2015}\x{FE58}]"

_KEYS = np.array(sorted(SINGLE_CHARACTER_MAP), np.int32)
_VALUES = np.array([SINGLE_CHARACTER_MAP[k] for k in _KEYS.tolist()], np.int32)


def unify_typography(strings) -> tf.Tensor:
    """Maps typographic punctuation and spaces to ASCII, leaving every other character as is.

    See `SINGLE_CHARACTER_MAP` for the characters; fullwidth ASCII forms map to ASCII, the
    ellipsis `…` to `...` and the em dash `—` to `--`. Strings that are not valid UTF-8 are
    returned unchanged (decoding them would replace their bytes, and byte-level tokenizers
    keep any bytes).

    Args:
        strings: a string tensor (or anything `tf.convert_to_tensor` makes one) of any shape.

    Returns:
        A `tf.string` tensor of the same shape. Pure TensorFlow ops: works eagerly, in
        `tf.function`, in `tf.data` and in a SavedModel.

    Example:
    >>> text = "It\u2019s \u201cfine\u201d\u00a0\u2014 really\u2026"
    >>> unify_typography([text]).numpy()[0].decode()
    'It\\'s "fine" -- really...'
    """
    strings = tf.convert_to_tensor(strings, tf.string)
    flat = tf.reshape(strings, [-1])
    codes = tf.strings.unicode_decode(flat, "UTF-8", errors="replace", replacement_char=0xFFFD)
    values = codes.flat_values
    values = tf.where(
        (values >= FULLWIDTH_FIRST) & (values <= FULLWIDTH_LAST),
        values - FULLWIDTH_OFFSET,
        values,
    )
    keys = tf.constant(_KEYS)
    index = tf.minimum(tf.searchsorted(keys, values), len(_KEYS) - 1)
    values = tf.where(
        tf.gather(keys, index) == values, tf.gather(tf.constant(_VALUES), index), values
    )
    unified = tf.strings.unicode_encode(codes.with_flat_values(values), "UTF-8")
    unified = tf.strings.regex_replace(unified, ELLIPSIS, "...")
    unified = tf.strings.regex_replace(unified, EM_DASH, "--")
    # Rows that are not valid UTF-8 change under a replace-transcode; keep them verbatim.
    valid = tf.equal(
        tf.strings.unicode_transcode(
            flat, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        ),
        flat,
    )
    return tf.reshape(tf.where(valid, unified, flat), tf.shape(strings))
