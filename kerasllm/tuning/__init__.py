"""Hyperparameter search over zoo presets with KerasTuner, trained by `kerasllm.training.Trainer`.

Example:
>>> from kerasllm.tuning import SearchSpace
>>> SearchSpace(num_heads=[2, 4], hidden_dim=[16, 24, 32]).validate("bert_tiny")
{2: [16, 24, 32], 4: [16, 24, 32]}
"""

from kerasllm.tuning.hypermodel import ZooHyperModel
from kerasllm.tuning.search import BEST_PRESET, BEST_TRAINING, retrain_best, run_search, write_best
from kerasllm.tuning.space import SearchSpace
from kerasllm.tuning.tuners import (
    ALGORITHMS,
    BayesianOptimization,
    Hyperband,
    RandomSearch,
    TrainerTunerMixin,
    TrialData,
    make_tuner,
    objective_for,
)

__all__ = [
    "ALGORITHMS",
    "BEST_PRESET",
    "BEST_TRAINING",
    "BayesianOptimization",
    "Hyperband",
    "RandomSearch",
    "SearchSpace",
    "TrainerTunerMixin",
    "TrialData",
    "ZooHyperModel",
    "make_tuner",
    "objective_for",
    "retrain_best",
    "run_search",
    "write_best",
]
