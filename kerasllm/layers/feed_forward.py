"""Position-wise feed-forward network, plain or gated."""

from __future__ import annotations

import keras

from kerasllm.layers.dense import make_dense

# Activations a config may name. Gated variants (Shazeer, 2020) multiply the activated gate
# projection with a second linear projection.
ACTIVATIONS = {
    "relu": ("relu", False),
    "gelu": ("gelu", False),  # exact erf GELU (BERT)
    "gelu_approximate": ("gelu_approximate", False),  # tanh GELU (GPT-2)
    "silu": ("silu", False),
    "reglu": ("relu", True),
    "geglu": ("gelu_approximate", True),  # T5 v1.1
    "swiglu": ("silu", True),  # LLaMA
}


def _activation_fn(name):
    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    return keras.activations.get(name)


@keras.saving.register_keras_serializable(package="kerasllm")
class FeedForward(keras.layers.Layer):
    """Two-layer (or gated three-matrix) feed-forward block.

    Plain: `output(act(intermediate(x)))`. Gated: `output(act(gate(x)) * intermediate(x))`: the
    activation applies to the *gate* projection (`gate_dense`, weights named "gate"), and the
    `intermediate` projection (`inner_dense`) is the linear one, as in T5 v1.1's `wi_0`/`wi_1`
    and LLaMA's `gate_proj`/`up_proj`; mapping imported weights the other way round swaps them.

    Args:
        intermediate_dim: width of the hidden layer.
        activation: one of `FeedForward.ACTIVATIONS` ("relu", "gelu", "gelu_approximate",
            "silu", "reglu", "geglu", "swiglu").
        use_bias: biases on the projections (False for T5).
        dropout: dropout on the hidden activations.

    Example:
    >>> import numpy as np
    >>> tuple(FeedForward(16, activation="swiglu")(np.zeros((2, 3, 8), "float32")).shape)
    (2, 3, 8)
    """

    ACTIVATIONS = tuple(ACTIVATIONS)

    def __init__(
        self,
        intermediate_dim: int,
        activation: str = "gelu",
        use_bias: bool = True,
        dropout: float = 0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}."
            )
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.use_bias = use_bias
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        base, self.gated = ACTIVATIONS[activation]
        self._activation = _activation_fn(base)
        self.hidden_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.inner_dense = make_dense(self, self.intermediate_dim, "intermediate")
        self.inner_dense.build(input_shape)
        if self.gated:
            self.gate_dense = make_dense(self, self.intermediate_dim, "gate")
            self.gate_dense.build(input_shape)
        self.output_dense = make_dense(self, input_shape[-1], "output")
        self.output_dense.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, x, training=None):
        if self.gated:
            hidden = self._activation(self.gate_dense(x)) * self.inner_dense(x)
        else:
            hidden = self._activation(self.inner_dense(x))
        return self.output_dense(self.hidden_dropout(hidden, training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
