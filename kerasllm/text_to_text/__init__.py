"""Text in, text out with any sequence-to-sequence model bundle: `TextToText` (translation,
summarization, ...), and the text helpers it uses (`clean`, `split_to_fit`).

Scores of its outputs: `kerasllm.metrics` (BLEU, chrF).
"""

from kerasllm.text_to_text.pipeline import TextToText
from kerasllm.text_to_text.text import clean, split_to_fit

__all__ = ["TextToText", "clean", "split_to_fit"]
