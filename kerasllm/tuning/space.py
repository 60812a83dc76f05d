"""`SearchSpace`: the hyperparameters a search may change, checked against a zoo preset up front.

Architecture choices (layers, hidden size, heads, feed-forward size, dropout) become backbone
overrides of the preset; training choices (learning rate, warmup, label smoothing, batch size)
become `TrainerConfig` fields. The coupled constraint "hidden size divisible by the number of
heads" (and every other rule of `Backbone.validate_config`, such as an even head size for rotary
embeddings) is resolved before the search starts: the number of heads is drawn first, and the
hidden size is drawn, inside a KerasTuner conditional scope, only among the sizes valid for that
number of heads. An invalid model is therefore never built.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Sequence

import keras_tuner

from kerasllm import zoo
from kerasllm.models import Backbone

TRAINING = ("learning_rate", "warmup_steps", "label_smoothing", "batch_size")
#: Hyperparameters that need a positive integer, and the ones that are fractions in [0, 1).
_POSITIVE_INTS = ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "batch_size")
_FRACTIONS = ("dropout", "label_smoothing")


def _validate_backbone(family: str, config: dict) -> str | None:
    """The message of the ValueError the backbone's constructor would raise, or None."""
    backbone_class = zoo.FAMILIES[family]
    parameters = inspect.signature(Backbone.__init__).parameters.values()
    full = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    full.update(config)
    try:
        backbone_class.validate_config(full)  # a class method: no model is built
    except ValueError as error:
        return str(error)
    return None


@dataclasses.dataclass
class SearchSpace:
    """Choices for each searched hyperparameter; None keeps the preset's (or trainer's) value.

    Every field is a sequence of candidate values (KerasTuner `Choice`s, so RandomSearch,
    Hyperband and BayesianOptimization all handle them).

    Attributes:
        num_layers: transformer blocks (per stack for encoder-decoders).
        num_heads: attention heads.
        hidden_dim: model width; only the values divisible by the drawn `num_heads` (and valid
            for the preset's other settings) are offered for it.
        intermediate_dim: feed-forward width.
        dropout: dropout rate.
        learning_rate: peak learning rate.
        warmup_steps: linear warmup updates.
        label_smoothing: cross-entropy label smoothing.
        batch_size: global batch size.

    Example:
    >>> space = SearchSpace(num_heads=[2, 4], hidden_dim=[16, 24])
    >>> space.valid_hidden_dims("bert_tiny")
    {2: [16, 24], 4: [16, 24]}
    >>> SearchSpace(num_heads=[5], hidden_dim=[16, 24]).valid_hidden_dims("bert_tiny")
    Traceback (most recent call last):
    ...
    ValueError: No valid (num_heads, hidden_dim) combination for preset 'bert_tiny': \
num_heads=5 with hidden_dim=16: `hidden_dim` (16) must be divisible by `num_heads` (5), or set \
`head_dim` explicitly.; num_heads=5 with hidden_dim=24: `hidden_dim` (24) must be divisible by \
`num_heads` (5), or set `head_dim` explicitly.
    """

    num_layers: Sequence[int] | None = None
    num_heads: Sequence[int] | None = None
    hidden_dim: Sequence[int] | None = None
    intermediate_dim: Sequence[int] | None = None
    dropout: Sequence[float] | None = None
    learning_rate: Sequence[float] | None = None
    warmup_steps: Sequence[int] | None = None
    label_smoothing: Sequence[float] | None = None
    batch_size: Sequence[int] | None = None

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpace:
        """Builds a space from `{name: [choices]}` (e.g. parsed JSON); unknown names fail."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Unknown search-space hyperparameters {sorted(unknown)}; allowed: {sorted(known)}."
            )
        return cls(**values)

    def to_dict(self) -> dict:
        """The declared choices (searched hyperparameters only), JSON-serializable."""
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v is not None}

    # ------------------------------------------------------------- checking
    def _check_values(self) -> None:
        for name, values in self.to_dict().items():
            if not values:
                raise ValueError(f"Search space `{name}` has no choices; give at least one.")
            if len(set(values)) != len(values):
                raise ValueError(f"Search space `{name}` repeats a value: {values}.")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"Search space `{name}` must hold numbers; got {value!r}.")
                if name in _POSITIVE_INTS and (not isinstance(value, int) or value < 1):
                    raise ValueError(
                        f"Search space `{name}` must hold positive integers; got {value!r}."
                    )
                if name in _FRACTIONS and not 0.0 <= value < 1.0:
                    raise ValueError(
                        f"Search space `{name}` values must be in [0, 1); got {value}."
                    )
                if name == "learning_rate" and value <= 0:
                    raise ValueError(
                        f"Search space `learning_rate` values must be > 0; got {value}."
                    )
                if name == "warmup_steps" and (not isinstance(value, int) or value < 0):
                    raise ValueError(
                        f"Search space `warmup_steps` must hold integers >= 0; got {value!r}."
                    )

    def _base_config(self, preset: str) -> tuple[str, dict]:
        spec = zoo.get_preset(preset)
        config = dict(spec.config)
        if self.num_heads is not None or self.hidden_dim is not None:
            # The searched width and heads define the head size (hidden_dim / num_heads).
            config["head_dim"] = None
        return spec.family, config

    def valid_hidden_dims(self, preset: str) -> dict[int, list[int]]:
        """For each candidate head count, the candidate hidden sizes the preset's backbone accepts.

        Raises:
            ValueError: a declared value is out of range, or no (num_heads, hidden_dim) pair is
                valid; the message names every rejected pair and why.
        """
        self._check_values()
        family, config = self._base_config(preset)
        heads = list(self.num_heads or [config["num_heads"]])
        hiddens = list(self.hidden_dim or [config["hidden_dim"]])
        valid: dict[int, list[int]] = {}
        rejected = []
        for head_count, hidden in itertools.product(heads, hiddens):
            error = _validate_backbone(
                family, {**config, "num_heads": head_count, "hidden_dim": hidden}
            )
            if error is None:
                valid.setdefault(head_count, []).append(hidden)
            else:
                rejected.append(f"num_heads={head_count} with hidden_dim={hidden}: {error}")
        if not valid:
            raise ValueError(
                f"No valid (num_heads, hidden_dim) combination for preset {preset!r}: "
                + "; ".join(rejected)
            )
        return valid

    def validate(self, preset: str) -> dict[int, list[int]]:
        """Checks the whole space against `preset` before anything is built.

        Every value of the independent architecture choices is checked with the backbone's own
        `validate_config`, and at least one (num_heads, hidden_dim) pair must be valid.

        Returns:
            `valid_hidden_dims(preset)`.

        Raises:
            ValueError: naming the offending hyperparameter and value.
        """
        valid = self.valid_hidden_dims(preset)
        family, config = self._base_config(preset)
        heads, hiddens = next(iter(valid.items()))
        config.update(num_heads=heads, hidden_dim=hiddens[0])
        for name in ("num_layers", "intermediate_dim", "dropout"):
            for value in getattr(self, name) or []:
                error = _validate_backbone(family, {**config, name: value})
                if error is not None:
                    raise ValueError(f"Search space {name}={value!r} is invalid: {error}")
        return valid

    # ------------------------------------------------------------- sampling
    def declare(self, hp: keras_tuner.HyperParameters, preset: str) -> tuple[dict, dict]:
        """Declares the space on `hp` and returns this trial's values.

        Declaring registers every hyperparameter (all conditional branches included) and reads
        the active values, so the same call serves the oracle's initial space and each trial.

        Returns:
            `(backbone_overrides, training_values)`: e.g. `({"num_heads": 2, "hidden_dim": 32,
            "head_dim": None}, {"learning_rate": 1e-3})`.
        """
        valid = self.validate(preset)
        overrides: dict = {}
        training: dict = {}
        if self.num_heads is not None or self.hidden_dim is not None:
            heads = hp.Choice("num_heads", sorted(valid))
            for head_count in sorted(valid):
                with hp.conditional_scope("num_heads", [head_count]):
                    hidden = hp.Choice("hidden_dim", sorted(valid[head_count]))
                if head_count == heads:
                    # Values set by hand (not by an oracle) could pair any hidden size.
                    if hidden not in valid[head_count]:
                        raise ValueError(
                            f"hidden_dim={hidden} is not valid with num_heads={heads}; "
                            f"allowed: {sorted(valid[head_count])}."
                        )
                    overrides["hidden_dim"] = hidden
            overrides["num_heads"] = heads
            overrides["head_dim"] = None
        for name in ("num_layers", "intermediate_dim", "dropout"):
            values = getattr(self, name)
            if values is not None:
                overrides[name] = hp.Choice(name, sorted(values))
        for name in TRAINING:
            values = getattr(self, name)
            if values is not None:
                training[name] = hp.Choice(name, sorted(values))
        return overrides, training
