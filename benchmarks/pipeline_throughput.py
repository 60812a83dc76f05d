"""Throughput (real tokens/s) and padding fraction of every kerasllm.data pipeline.

Runs each pipeline on the real offline corpora, with and without length bucketing (and,
for causal LM, with and without packing), and prints a table.

    python benchmarks/pipeline_throughput.py [--max-batches 150] [--json out.json]

Tokenizers are trained first on corpus subsets (not timed in the table).
"""

from __future__ import annotations

import argparse
import json
import time

import kerasllm.tokenizers as kt
from kerasllm import data, datasets


def _train_tokenizers():
    news = datasets.news_corpus("train")
    reviews, _ = datasets.rotten_tomatoes("train")
    pairs = datasets.parallel_corpus(split="train")
    tokens, _, _ = datasets.wnut_ner("train")
    t0 = time.perf_counter()
    wordpiece = kt.train_wordpiece(
        reviews[:4000] + [" ".join(t) for t in tokens] + [d[:3000] for d in news[:300]], 4000
    )
    t1 = time.perf_counter()
    sentencepiece = kt.train_sentencepiece([t for p in pairs for t in p], 8000)
    t2 = time.perf_counter()
    byte_bpe = kt.train_byte_bpe([d[:3000] for d in news[:1000]], 4000)
    t3 = time.perf_counter()
    print(
        f"tokenizer training: wordpiece {t1 - t0:.1f}s (6.2k texts), sentencepiece "
        f"{t2 - t1:.1f}s (59.6k verses), byte_bpe {t3 - t2:.1f}s (1k articles)"
    )
    return wordpiece, sentencepiece, byte_bpe


def _measure(name, variant, build, max_batches):
    ds, stats = build()
    start = time.perf_counter()
    batches = 0
    for _ in ds.take(max_batches):
        batches += 1
    elapsed = time.perf_counter() - start
    s = stats.as_dict()
    return {
        "pipeline": name,
        "variant": variant,
        "batches": batches,
        "seconds": round(elapsed, 2),
        "tokens_per_s": round(s["real_tokens"] / elapsed),
        "padding_fraction": round(s["padding_fraction"], 4),
        "truncated": s["truncated"],
        "skipped": s["skipped_empty"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-batches", type=int, default=150)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    wordpiece, sentencepiece, byte_bpe = _train_tokenizers()
    news = datasets.news_corpus("train")
    reviews, labels = datasets.rotten_tomatoes("train")
    pairs = datasets.parallel_corpus(split="train")
    tokens, tags, tag_names = datasets.wnut_ner("train")
    common = {"seed": 0}
    runs = []
    for bucketing in (False, True):
        variant = "bucketing" if bucketing else "fixed length"
        runs += [
            (
                "masked_lm (news, wordpiece, T=256)",
                variant,
                lambda b=bucketing: data.masked_lm_dataset(
                    news, wordpiece, 256, 32, bucketing=b, **common
                ),
            ),
            (
                "seq2seq (bible 4->l, sentencepiece, T=128)",
                variant,
                lambda b=bucketing: data.seq2seq_dataset(
                    pairs, sentencepiece, sentencepiece, 128, 128, 64, bucketing=b, **common
                ),
            ),
            (
                "classification (rotten tomatoes, wordpiece, T=128)",
                variant,
                lambda b=bucketing: data.classification_dataset(
                    reviews, labels, wordpiece, 128, 64, bucketing=b, **common
                ),
            ),
            (
                "token_classification (wnut, wordpiece, T=96)",
                variant,
                lambda b=bucketing: data.token_classification_dataset(
                    tokens,
                    tags,
                    wordpiece,
                    96,
                    64,
                    label_vocabulary=tag_names,
                    bucketing=b,
                    **common,
                ),
            ),
        ]
    runs += [
        (
            "causal_lm (news, byte_bpe, T=512)",
            "one document per row",
            lambda: data.causal_lm_dataset(news, byte_bpe, 512, 16, packing=False, **common),
        ),
        (
            "causal_lm (news, byte_bpe, T=512)",
            "one document per row + bucketing",
            lambda: data.causal_lm_dataset(
                news, byte_bpe, 512, 16, packing=False, bucketing=True, **common
            ),
        ),
        (
            "causal_lm (news, byte_bpe, T=512)",
            "packing",
            lambda: data.causal_lm_dataset(news, byte_bpe, 512, 16, packing=True, **common),
        ),
    ]
    results = [_measure(name, variant, build, args.max_batches) for name, variant, build in runs]
    results.sort(key=lambda r: r["pipeline"])
    header = f"{'pipeline':52s} {'variant':34s} {'tokens/s':>9s} {'padding':>8s} {'batches':>7s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['pipeline']:52s} {r['variant']:34s} {r['tokens_per_s']:9d} "
            f"{r['padding_fraction']:8.1%} {r['batches']:7d}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
