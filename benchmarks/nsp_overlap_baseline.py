"""How much next-sentence-prediction signal the news pairs hold: a one-feature rule.

NSP pretraining on news stayed at chance (49.96%: the head answered IsNext for every pair) in
every short run (docs/pretraining.md). This script asks whether the task is learnable from
these pairs at all, without a neural network: for each pair `(A, B)` of
`kerasllm.data.sentence_pairs` (BERT's segment pairs, half IsNext, NotNext segments from other
articles of the same split), the Jaccard overlap of the two segments' content words (lower-case
words of 3+ characters outside a short stop list); a pair is called IsNext when the overlap
passes a threshold tuned on the training pairs; accuracy on the validation and test pairs.
An encoder that attends from B's tokens to the same tokens in A can compute this feature, so
its accuracy is a floor for what NSP pretraining should reach, not a ceiling.

Pairs are measured in white-space words (`--max-words`, default 100: about the 125 tokens of
`next_sentence_dataset` at `--sequence-length 128`, since the 8,000-piece tokenizer gives
about 1.2 pieces per word), so they are BERT's pairs of these articles, not token for token
the ones a `kerasllm pretrain` run trains on. No TensorFlow work: runs in seconds.

    .venv/bin/python benchmarks/nsp_overlap_baseline.py --seed 0

`--pairs title` asks the same of the title-body pairs of `kerasllm.datasets.news_title_pairs`
(a title with its own article's body or another's; the body cut so that title + body hold
`--max-words` words, what a pair classifier at `--sequence-length 128` reads): the "positive"
class there is `match`.

    .venv/bin/python benchmarks/nsp_overlap_baseline.py --pairs title
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np

_STOP_TEXT = (
    "the a an and or of to in on for with at by from is are was were be been it its this that "
    "as he she they we you his her their our not but have has had will would said says who "
    "which what when there than then also more one two about after all can into out over"
)
STOP_WORDS = frozenset(_STOP_TEXT.split())


def content_words(text: str) -> set[str]:
    """Lower-case words of 3+ characters outside `STOP_WORDS`.

    >>> sorted(content_words("The Senate said the bill, the Senate's, was passed."))
    ['bill', 'passed', 'senate', "senate's"]
    """
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {w for w in words if len(w) > 2 and w not in STOP_WORDS}


def overlap(texts_a: list[str], texts_b: list[str]) -> np.ndarray:
    """The Jaccard overlap of each pair's content words (0 when both are empty).

    >>> overlap(["Paris talks resume", "rain"], ["talks in Paris end", "stocks fell"]).round(2)
    array([0.5, 0. ])
    """
    out = []
    for a, b in zip(texts_a, texts_b):
        wa, wb = content_words(a), content_words(b)
        out.append(len(wa & wb) / max(1, len(wa | wb)))
    return np.asarray(out, "float64")


def best_threshold(feature: np.ndarray, labels: np.ndarray) -> float:
    """The threshold `t` (among the feature's values) maximizing accuracy of `feature > t`.

    >>> best_threshold(np.array([0.1, 0.2, 0.6, 0.7]), np.array([0, 0, 1, 1]))
    0.2
    """
    candidates = np.unique(feature)
    accuracy = [((feature > t) == labels).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def title_pairs(split: str, max_words: int) -> tuple[list[str], list[str], list[int]]:
    """`news_title_pairs(split)` as (titles, bodies cut to fill `max_words` with the title,
    1 for a match): the words a pair classifier reads, the longer side (the body) cut first."""
    from kerasllm.datasets import NEWS_TITLE_PAIR_LABELS, news_title_pairs

    (titles, bodies), labels = news_title_pairs(split)
    match = NEWS_TITLE_PAIR_LABELS.index("match")
    cut = [
        " ".join(body.split()[: max(0, max_words - len(title.split()))])
        for title, body in zip(titles, bodies)
    ]
    return titles, cut, [int(label == match) for label in labels]


def main(argv: list[str] | None = None) -> dict:
    from kerasllm.data import sentence_pairs
    from kerasllm.datasets import news_corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs",
        choices=("nsp", "title"),
        default="nsp",
        help="nsp: BERT's segment pairs of the news; title: news_title_pairs.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the NSP pairs.")
    parser.add_argument(
        "--max-words", type=int, default=100, help="Target length of A + B in words."
    )
    args = parser.parse_args(argv)
    report: dict = {"pairs": args.pairs, "max_words": args.max_words, "rule": "jaccard > t"}
    if args.pairs == "nsp":
        report["seed"] = args.seed
    threshold = None
    for split in ("train", "validation", "test"):
        if args.pairs == "title":
            texts_a, texts_b, labels = title_pairs(split, args.max_words)
        else:
            texts_a, texts_b, labels = sentence_pairs(
                news_corpus(split), seed=args.seed, max_length=args.max_words
            )
        labels = np.asarray(labels)
        feature = overlap(texts_a, texts_b)
        if threshold is None:
            threshold = best_threshold(feature, labels)
            report["threshold"] = round(threshold, 4)
        report[split] = {
            "pairs": int(labels.size),
            "positive_share": round(float(labels.mean()), 4),
            "accuracy": round(float(((feature > threshold) == labels).mean()), 4),
            "mean_overlap_positive": round(float(feature[labels == 1].mean()), 4),
            "mean_overlap_negative": round(float(feature[labels == 0].mean()), 4),
        }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
