"""Test BLEU / chrF of a translation bundle on plain and typographic source text.

Measures what users who paste typographic punctuation get: every ASCII apostrophe of the
English source verses replaced by U+2019 (’) ("apostrophe"), and also every ASCII double quote
by alternating U+201C / U+201D (“ ”) ("quotes"), scored against the same references as the
plain source. Greedy decoding unless --beams is given. Prints one JSON object.

    python examples/translation/typography_bleu.py --model saved_models/translate_en_fr
    python examples/translation/typography_bleu.py --variants plain,apostrophe --beams 4
    python examples/translation/typography_bleu.py --unify off   # tokenizer option forced off
"""

from __future__ import annotations

import argparse
import json
import re
import time

from kerasllm.datasets import parallel_corpus
from kerasllm.metrics import score
from kerasllm.text_to_text import TextToText


def _curly_double(text: str) -> str:
    # Opening quote at the start or after a space / opening bracket, closing otherwise.
    return re.sub(r'(^|(?<=[\s(\[]))"', "\u201c", text).replace('"', "\u201d")


VARIANTS = {
    "plain": lambda text: text,
    "apostrophe": lambda text: text.replace("'", "\u2019"),
    "quotes": lambda text: _curly_double(text.replace("'", "\u2019")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/translate_en_fr")
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--variants", default="plain,apostrophe")
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--unify",
        choices=("file", "on", "off"),
        default="file",
        help="the source tokenizer's unify_typography: as saved in the bundle, or forced",
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")

    translator = TextToText(args.model)
    tokenizer = translator.source_tokenizer
    if args.unify != "file":
        tokenizer.unify_typography = args.unify == "on"
    pairs = parallel_corpus("bible", src="4", tgt="l", split=args.split)[: args.limit]
    references = [target for _, target in pairs]
    report = {
        "model": args.model,
        "split": args.split,
        "verses": len(pairs),
        "beams": args.beams,
        "unify_typography": getattr(tokenizer, "unify_typography", None),
        "results": {},
    }
    outputs = {}
    for name in variants:
        sources = [VARIANTS[name](source) for source, _ in pairs]
        start = time.perf_counter()
        outputs[name] = translator.generate(sources, beams=args.beams)
        seconds = round(time.perf_counter() - start, 1)
        figures = score(outputs[name], references)
        report["results"][name] = {
            "bleu": figures["bleu"],
            "chrf": figures["chrf"],
            "changed_verses": sum(s != p[0] for s, p in zip(sources, pairs)),
            "translate_seconds": seconds,
        }
        if name != "plain" and "plain" in outputs:
            same = sum(a == b for a, b in zip(outputs[name], outputs["plain"]))
            report["results"][name]["outputs_identical_to_plain"] = same
    report["bleu_signature"] = figures["bleu_signature"]
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
