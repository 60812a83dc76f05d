"""`Task`: a backbone plus a head, serializable with its backbone."""

from __future__ import annotations

import keras
from keras import ops


class Task(keras.Model):
    """Base class of the task models: holds `self.backbone` and round-trips it through config.

    Task outputs are always float32 logits, whatever the dtype policy (mixed precision keeps the
    loss and the softmax in float32).
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    @staticmethod
    def _float32(logits):
        return ops.cast(logits, "float32")

    def _require_backbone(self, *classes):
        if not isinstance(self.backbone, classes):
            names = " or ".join(c.__name__ for c in classes)
            raise ValueError(
                f"{type(self).__name__} needs a {names} backbone; "
                f"got {type(self.backbone).__name__}."
            )
