"""Task metrics computed on Python outputs (text, labels, spans), one module per family:

- `generation`: corpus BLEU and chrF (sacrebleu) for any text-to-text output.

Every function takes plain Python sequences and returns plain floats/dicts, so the same code
scores a `predict`/`generate` call, a `kerasllm evaluate` run and an example script.

>>> from kerasllm import metrics
>>> metrics.score(["Le chat dort."], ["Le chat dort."])["bleu"]
100.0
"""

from kerasllm.metrics.generation import bleu, chrf, score

__all__ = ["bleu", "chrf", "score"]
