"""`ZooHyperModel`: a KerasTuner `HyperModel` that builds a zoo preset with a trial's values."""

from __future__ import annotations

import dataclasses

import keras
import keras_tuner

from kerasllm import zoo
from kerasllm.training import TrainerConfig, objectives
from kerasllm.tuning.space import SearchSpace


class ZooHyperModel(keras_tuner.HyperModel):
    """Builds `zoo.get(preset, task=...)` with the architecture values of a trial.

    Args:
        preset: a zoo preset name or preset JSON file.
        objective: a `kerasllm.training` objective name (its zoo task is built).
        space: the `SearchSpace`; validated against the preset here, so an impossible space
            fails before any trial.
        vocabulary_size: the tokenizer's size (overrides the preset's).
        num_classes: classes of the classification objectives.

    Example:
    >>> import keras_tuner
    >>> hypermodel = ZooHyperModel("bert_tiny", "classification",
    ...                            SearchSpace(num_layers=[1], hidden_dim=[16, 32]),
    ...                            vocabulary_size=100, num_classes=2)
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.backbone.num_layers, model.backbone.hidden_dim
    (1, 16)
    """

    def __init__(
        self,
        preset: str,
        objective: str,
        space: SearchSpace,
        vocabulary_size: int,
        num_classes: int | None = None,
    ):
        super().__init__(name=f"{zoo.get_preset(preset).name}_hypermodel")
        self.preset = preset
        self.objective = objectives.get(objective)
        self.space = space
        self.vocabulary_size = vocabulary_size
        self.num_classes = num_classes
        space.validate(preset)

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        # Declares every conditional branch without building a model.
        self.space.declare(hp, self.preset)

    def model_overrides(self, hp: keras_tuner.HyperParameters) -> dict:
        """Backbone overrides of the trial, including the tokenizer's vocabulary size."""
        overrides, _ = self.space.declare(hp, self.preset)
        return {**overrides, "vocabulary_size": self.vocabulary_size}

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The task model of the trial (random initial weights)."""
        kwargs = self.model_overrides(hp)
        if self.objective.name in ("classification", "token_classification"):
            kwargs["num_classes"] = self.num_classes or 2
        return zoo.get(self.preset, task=self.objective.task, weights=None, **kwargs)

    def trainer_config(
        self, hp: keras_tuner.HyperParameters, base: TrainerConfig, **changes
    ) -> TrainerConfig:
        """`base` with the trial's training values (batch size, learning rate, ...), `changes`."""
        _, training = self.space.declare(hp, self.preset)
        if "batch_size" in training:
            training["global_batch_size"] = training.pop("batch_size")
        return dataclasses.replace(base, **training, **changes)

    def best_config(self, hp: keras_tuner.HyperParameters) -> dict:
        """The full backbone config of a trial, as a preset stores it."""
        config = {**zoo.get_preset(self.preset).config, **self.model_overrides(hp)}
        return {k: v for k, v in config.items() if not (k == "head_dim" and v is None)}
