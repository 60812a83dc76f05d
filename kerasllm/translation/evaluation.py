"""Translation quality: sacrebleu BLEU and chrF against reference translations."""

from __future__ import annotations

import time

import sacrebleu

from kerasllm.data import parallel_corpus


def score(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU (cased, 13a tokenization, sacrebleu's defaults) and chrF.

    Returns `{"bleu", "chrf", "bleu_signature", "chrf_signature"}`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} references; they must match."
        )
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


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
        translate: `fn(list[str], **translate_kwargs) -> list[str]`, e.g. `Translator.translate`.
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
