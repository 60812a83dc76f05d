"""Token and position embeddings.

Absolute positions (learned, sinusoidal) are added to token embeddings; rotary positions rotate
queries and keys inside attention; T5's relative position bias is added to attention logits.
Every positional layer takes a `start_index` so that incremental decoding with a KV cache sees the
same positions as a full forward pass.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasllm")
class TokenEmbedding(keras.layers.Embedding):
    """Token embedding that doubles as the output projection to the vocabulary.

    `call(ids)` looks ids up; `call(hidden, reverse=True)` projects hidden states to vocabulary
    logits, with the transposed embedding matrix when `tie_weights` (BERT, GPT-2, T5) or with a
    separate matrix otherwise.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding width.
        tie_weights: share the input matrix with the output projection.
        logit_scale: multiplies hidden states before the reverse projection (T5 v1.0 uses
            `hidden_dim ** -0.5` with tied weights); None means 1.

    Example:
    >>> import numpy as np
    >>> emb = TokenEmbedding(100, 8)
    >>> hidden = emb(np.array([[1, 2, 3]]))
    >>> tuple(emb(hidden, reverse=True).shape)
    (1, 3, 100)
    """

    def __init__(self, input_dim, output_dim, tie_weights=True, logit_scale=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.tie_weights = tie_weights
        self.logit_scale = logit_scale

    def build(self, input_shape=None):
        super().build(input_shape)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
            )

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        # Keras' Embedding does not cast its inputs (they are ids); hidden states are floats
        # and follow the dtype policy like any other layer's inputs.
        inputs = ops.cast(inputs, self.compute_dtype)
        if self.logit_scale is not None:
            inputs = inputs * ops.cast(self.logit_scale, inputs.dtype)
        if self.tie_weights:
            kernel = ops.transpose(ops.cast(self.embeddings, self.compute_dtype))
        else:
            kernel = ops.cast(self.reverse_embeddings, self.compute_dtype)
        return ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    # Keras' Embedding saves exactly the variables of its own quantization spec (`embeddings`),
    # so an untied output matrix would silently be left out of `.keras` / `.weights.h5` files
    # (and loading them fails). It goes after Embedding's own entries.
    def save_own_variables(self, store) -> None:
        super().save_own_variables(store)
        if self.built and not self.tie_weights:
            store[str(len(store.keys()))] = self.reverse_embeddings

    def load_own_variables(self, store) -> None:
        super().load_own_variables(store)
        if self.built and not self.tie_weights:
            self.reverse_embeddings.assign(store[str(len(store.keys()) - 1)])

    def compute_output_spec(self, inputs, reverse=False):
        # Keras' Embedding.compute_output_spec takes no `reverse`: without this the reverse
        # projection cannot be called on a keras.Input.
        if not reverse:
            return super().compute_output_spec(inputs)
        shape = self.compute_output_shape(inputs.shape, reverse=True)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "tie_weights": self.tie_weights,
            "logit_scale": self.logit_scale,
        }


@keras.saving.register_keras_serializable(package="kerasllm")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings (BERT, GPT-2).

    `call(x, start_index)` returns the embeddings of positions
    `start_index .. start_index + x.shape[1] - 1`, broadcast to x's shape.

    Args:
        sequence_length: the largest position + 1.
    """

    def __init__(self, sequence_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, x, start_index=0):
        length = ops.shape(x)[1]
        table = ops.cast(self.position_embeddings, self.compute_dtype)
        positions = ops.slice(table, (start_index, 0), (length, ops.shape(table)[-1]))
        return ops.broadcast_to(positions, ops.shape(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="kerasllm")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sine/cosine position encodings of Vaswani et al. (2017); no weights.

    Uses the interleaving of the original paper's tensor2tensor code: sines in the first half of
    the features, cosines in the second.
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, x, start_index=0):
        length, width = ops.shape(x)[1], ops.shape(x)[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        half = width // 2
        timescales = ops.exp(
            -math.log(self.max_wavelength) * ops.cast(ops.arange(half), "float32") / half
        )
        angles = positions[:, None] * timescales[None, :]
        encoding = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), ops.shape(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="kerasllm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (Su et al., 2021) applied to queries or keys.

    Input shape (batch, length, heads, head_dim); rotates feature pairs (i, i + head_dim/2) by an
    angle proportional to the absolute position `start_index + t` (the GPT-NeoX/LLaMA layout).
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, x, start_index=0):
        length, head_dim = ops.shape(x)[1], ops.shape(x)[-1]
        half = head_dim // 2
        inverse_freq = 1.0 / (
            self.max_wavelength ** (ops.cast(ops.arange(half), "float32") * 2.0 / head_dim)
        )
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        angles = positions[:, None] * inverse_freq[None, :]
        cos = ops.cast(ops.cos(angles), x.dtype)[None, :, None, :]
        sin = ops.cast(ops.sin(angles), x.dtype)[None, :, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return ops.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="kerasllm")
class RelativePositionBias(keras.layers.Layer):
    """T5's bucketed relative position bias, added to the attention logits of every layer.

    Relative distances are mapped to `num_buckets` buckets: exact for small distances,
    logarithmic up to `max_distance`; bidirectional stacks (encoders) split the buckets between
    the two directions. One learned scalar per bucket and head.

    `call(query_length, key_length, query_offset=0)` returns a (1, heads, T, S) bias; the offset
    is the absolute position of the first query (the cache index when decoding).
    """

    def __init__(
        self,
        num_heads: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional

    def build(self, input_shape=None):
        self.bias = self.add_weight(
            name="embeddings", shape=(self.num_buckets, self.num_heads), initializer="zeros"
        )

    def _bucket(self, relative_position):
        relative_position = ops.cast(relative_position, "int32")
        num_buckets = self.num_buckets
        bucket = 0
        if self.bidirectional:
            num_buckets //= 2
            bucket = ops.cast(relative_position > 0, "int32") * num_buckets
            relative_position = ops.abs(relative_position)
        else:
            relative_position = -ops.minimum(relative_position, 0)
        max_exact = num_buckets // 2
        is_small = relative_position < max_exact
        # Clamp to 1 before the log: the large branch is discarded for small distances anyway.
        scaled = ops.log(ops.cast(ops.maximum(relative_position, 1), "float32") / max_exact)
        large = max_exact + ops.cast(
            scaled / math.log(self.max_distance / max_exact) * (num_buckets - max_exact), "int32"
        )
        large = ops.minimum(large, num_buckets - 1)
        return bucket + ops.where(is_small, relative_position, large)

    def call(self, query_length, key_length, query_offset=0):
        query_positions = ops.arange(query_length, dtype="int32")[:, None] + ops.cast(
            query_offset, "int32"
        )
        key_positions = ops.arange(key_length, dtype="int32")[None, :]
        buckets = self._bucket(key_positions - query_positions)
        values = ops.take(ops.cast(self.bias, self.compute_dtype), buckets, axis=0)  # (T, S, N)
        return ops.expand_dims(ops.transpose(values, (2, 0, 1)), 0)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
            "bidirectional": self.bidirectional,
        }
