"""English-to-French translation: the recipe that trains the shipped model, a `Translator` that
turns text into text over any seq2seq bundle, and sacrebleu evaluation."""

from kerasllm.translation.evaluation import evaluate, score
from kerasllm.translation.model_card import write_model_card
from kerasllm.translation.recipe import Recipe, train
from kerasllm.translation.text import clean, split_to_fit
from kerasllm.translation.translator import Translator

__all__ = [
    "Recipe",
    "Translator",
    "clean",
    "evaluate",
    "score",
    "split_to_fit",
    "train",
    "write_model_card",
]
