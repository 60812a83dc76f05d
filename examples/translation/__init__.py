"""The English-to-French translation application built on kerasllm (not part of the library).

The recipe that trained the shipped `translate_en_fr` model (`recipe.py`: tokenizer, Bible data,
model, training, run history), its evaluation on the Bible's test and validation verses
(`evaluation.py`) and its model card writer (`model_card.py`). `examples/translate.py` is the
command line over them; it imports this folder as the package `translation` (the script's own
folder is first on `sys.path`). What any text-to-text model can use lives in the library:
`kerasllm.text_to_text.TextToText` (text in, text out over a seq2seq bundle) and
`kerasllm.metrics` (BLEU, chrF).
"""

from .evaluation import evaluate
from .model_card import write_model_card
from .recipe import Recipe, train

__all__ = ["Recipe", "evaluate", "train", "write_model_card"]
