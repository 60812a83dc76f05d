"""The projection every kerasllm layer builds its weights from."""

from __future__ import annotations

import keras


def make_dense(
    layer: keras.Layer, units: int, name: str, use_bias: bool | None = None
) -> keras.layers.Dense:
    """A `Dense` sub-layer of `layer` with its `use_bias` (unless `use_bias` is given), dtype
    policy and a fresh copy of its `kernel_initializer` (a copy: Keras warns when one seeded
    initializer instance creates several weights, and each projection must draw its own values)."""
    return keras.layers.Dense(
        units,
        use_bias=layer.use_bias if use_bias is None else use_bias,
        kernel_initializer=keras.initializers.get(
            keras.initializers.serialize(layer.kernel_initializer)
        ),
        dtype=layer.dtype_policy,
        name=name,
    )
