"""Token and position embeddings.

Absolute positions (learned, sinusoidal) are added to token embeddings; rotary positions rotate
queries and keys inside attention; T5's relative position bias is added to attention logits.
Every positional layer takes a `start_index` so that incremental decoding with a KV cache sees the
same positions as a full forward pass.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerasllm")
class TokenEmbedding(keras.layers.ReversibleEmbedding):
    """Token embedding that doubles as the output projection to the vocabulary.

    `call(ids)` looks ids up; `call(hidden, reverse=True)` projects hidden states to vocabulary
    logits, with the transposed embedding matrix when `tie_weights` (BERT, GPT-2, T5) or with a
    separate matrix otherwise.

    Built on Keras' `ReversibleEmbedding`, so `quantize("int8")` / `quantize("int4")` reach it
    (the lookup table and the output projection, tied or not) and its variables save and load
    in every quantization mode; it adds `logit_scale` and casts hidden states to the compute
    dtype before the reverse projection.

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
        super().__init__(input_dim, output_dim, tie_weights=tie_weights, **kwargs)
        self.logit_scale = logit_scale

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

    def quantized_call(self, inputs, reverse=False):
        # A quantized layer's `__call__` comes here instead of `call`: the reverse projection
        # gets the same input cast and `logit_scale` as in `call`, then Keras' quantized
        # matmul (int8: per-token int8 activations times the per-row int8 table).
        if reverse:
            inputs = ops.cast(inputs, self.compute_dtype)
            if self.logit_scale is not None:
                inputs = inputs * ops.cast(self.logit_scale, inputs.dtype)
        return super().quantized_call(inputs, reverse=reverse)

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras refuses to quantize subclasses of its layers unless told that the subclass
        # keeps the parent's variables and calls, which this one does (`quantized_call` above).
        super().quantize(mode, type_check=False, config=config)

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


#: Rotary scalings a `scaling` dict may name (Hugging Face's `rope_type`), with their keys.
ROPE_SCALINGS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


def check_rope_scaling(scaling) -> None:
    """Raises a ValueError unless `scaling` is None or a valid `ROPE_SCALINGS` dict."""
    if scaling is None:
        return
    if not isinstance(scaling, dict) or scaling.get("rope_type") not in ROPE_SCALINGS:
        raise ValueError(
            f"`rotary_scaling` must be None or a dict with rope_type in {sorted(ROPE_SCALINGS)}; "
            f"got {scaling!r}."
        )
    keys = ROPE_SCALINGS[scaling["rope_type"]]
    for key in keys:
        value = scaling.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(
                f"`rotary_scaling` {scaling['rope_type']!r} needs a positive {key!r}; got "
                f"{value!r}."
            )
    unknown = set(scaling) - {"rope_type", *keys}
    if unknown:
        raise ValueError(f"`rotary_scaling` has unknown keys {sorted(unknown)}.")
    if (
        scaling["rope_type"] == "llama3"
        and scaling["high_freq_factor"] <= scaling["low_freq_factor"]
    ):
        raise ValueError("`rotary_scaling` llama3 needs high_freq_factor > low_freq_factor.")


def rope_inverse_frequencies(head_dim: int, max_wavelength: float, scaling=None) -> np.ndarray:
    """The (head_dim / 2,) float32 rotation frequencies, with `scaling` applied as Hugging Face
    computes it ("linear": divided by `factor`; "llama3": long wavelengths divided by `factor`,
    short ones kept, the band between interpolated).

    Example:
    >>> rope_inverse_frequencies(4, 100.0, {"rope_type": "linear", "factor": 2.0}).tolist()
    [0.5, 0.05000000074505806]
    """
    inverse = 1.0 / (max_wavelength ** (np.arange(0, head_dim, 2, dtype=np.int64) / head_dim))
    if scaling is not None and scaling["rope_type"] == "linear":
        inverse = inverse / scaling["factor"]
    elif scaling is not None:
        factor, low, high = (scaling[k] for k in ("factor", "low_freq_factor", "high_freq_factor"))
        context = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / inverse
        scaled = np.where(wavelength > context / low, inverse / factor, inverse)
        smooth = (context / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelength >= context / high) & (wavelength <= context / low)
        inverse = np.where(medium, smoothed, scaled)
    return inverse.astype(np.float32)


@keras.saving.register_keras_serializable(package="kerasllm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (Su et al., 2021) applied to queries or keys.

    Input shape (batch, length, heads, head_dim); rotates feature pairs (i, i + head_dim/2) by an
    angle proportional to the absolute position `start_index + t` (the GPT-NeoX/LLaMA layout).

    Args:
        max_wavelength: the rotary base (Hugging Face's `rope_theta`).
        scaling: None, or a context-extension scaling of the frequencies (see
            `ROPE_SCALINGS`): `{"rope_type": "linear", "factor": 2.0}` or Llama 3's
            `{"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
            "original_max_position_embeddings"}`.
    """

    def __init__(self, max_wavelength: float = 10000.0, scaling: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        check_rope_scaling(scaling)
        self.max_wavelength = max_wavelength
        self.scaling = None if scaling is None else dict(scaling)

    def call(self, x, start_index=0):
        length, head_dim = ops.shape(x)[1], ops.shape(x)[-1]
        half = head_dim // 2
        if self.scaling is None:
            inverse_freq = 1.0 / (
                self.max_wavelength ** (ops.cast(ops.arange(half), "float32") * 2.0 / head_dim)
            )
        else:
            # head_dim is static (the layer's weights fix it), so the frequencies are constants.
            inverse_freq = ops.convert_to_tensor(
                rope_inverse_frequencies(x.shape[-1], self.max_wavelength, self.scaling)
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
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scaling": self.scaling,
        }


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
