"""Translation quality on the Bible verses: sacrebleu BLEU and chrF (`kerasllm.metrics`) of a
model's translations of a split against its reference translations."""

from __future__ import annotations

import time

from kerasllm.datasets import parallel_corpus
from kerasllm.metrics import score


def evaluate(
    translate,
    split: str = "test",
    src: str = "4",
    tgt: str = "l",
    examples: int = 8,
    limit: int | None = None,
    **translate_kwargs,
) -> dict:
    """Translates a Bible split and scores it.

    Args:
        translate: `fn(list[str], **translate_kwargs) -> list[str]`, e.g.
            `kerasllm.text_to_text.TextToText(bundle).generate`.
        split: "test" (996 verses) or "validation" (313 verses); tune on validation only.
        src, tgt: Bible versions (English WEB and French Louis Segond by default).
        examples: how many (source, reference, hypothesis) triples to include.
        limit: score only the first `limit` verses (quick checks); None scores the whole split.

    Returns:
        A JSON-serializable report with the scores, timing and example translations.
    """
    pairs = parallel_corpus("bible", src=src, tgt=tgt, split=split)
    if limit is not None:
        pairs = pairs[:limit]
    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    start = time.perf_counter()
    hypotheses = translate(sources, **translate_kwargs)
    seconds = time.perf_counter() - start
    report = {
        "split": split,
        "verses": len(pairs),
        **score(hypotheses, references),
        "translate_seconds": round(seconds, 1),
        "settings": {k: v for k, v in translate_kwargs.items() if isinstance(v, int | float | str)},
        "examples": [
            {"source": s, "reference": r, "translation": h}
            for s, r, h in list(zip(sources, references, hypotheses))[:examples]
        ],
    }
    return report
