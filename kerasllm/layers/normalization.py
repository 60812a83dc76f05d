"""Normalization layers."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasllm")
class RMSNorm(keras.layers.Layer):
    """Root-mean-square layer normalization with a learned scale and no bias (T5, LLaMA).

    Statistics are computed in float32 whatever the compute dtype, as mixed precision requires.

    Args:
        epsilon: added to the mean square before the square root.

    Example:
    >>> import numpy as np
    >>> tuple(RMSNorm()(np.ones((2, 3, 4), "float32")).shape)
    (2, 3, 4)
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer="ones", trainable=True
        )

    def call(self, x):
        x32 = ops.cast(x, "float32")
        variance = ops.mean(ops.square(x32), axis=-1, keepdims=True)
        x32 = x32 * ops.rsqrt(variance + self.epsilon)
        return ops.cast(x32, self.compute_dtype) * ops.cast(self.scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def make_norm(norm_type: str, epsilon: float, name: str, dtype=None) -> keras.layers.Layer:
    """Builds the normalization layer named by a config's `norm_type` ("layer" or "rms")."""
    if norm_type == "layer":
        return keras.layers.LayerNormalization(epsilon=epsilon, name=name, dtype=dtype)
    if norm_type == "rms":
        return RMSNorm(epsilon=epsilon, name=name, dtype=dtype)
    raise ValueError(f"Unknown norm_type {norm_type!r}; expected 'layer' or 'rms'.")
