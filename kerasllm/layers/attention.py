"""Multi-head attention with grouped-query heads and a KV cache for incremental decoding."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import keras
from keras import ops

from kerasllm.layers.dense import make_dense
from kerasllm.layers.embeddings import RotaryEmbedding

_CORE_TF_CACHE_WRITES = contextvars.ContextVar("core_tf_cache_writes", default=False)


@contextlib.contextmanager
def core_tf_cache_writes() -> Iterator[None]:
    """KV-cache writes traced inside this context use a core TensorFlow op.

    `keras.ops.slice_update` is `XlaDynamicUpdateSlice` on the TensorFlow backend, an XLA op
    that a graph which is not XLA-compiled (a SavedModel for TF Serving) then runs through
    TensorFlow's on-demand XLA kernel; TF Serving GPU builds have been reported to fail on it
    inside loops (tensorflow/serving#2217). Inside this context the write is
    `TensorStridedSliceUpdate`, a core op with CPU and GPU kernels and the same result
    (measured 2.6-3.6x faster per write than the XLA op outside XLA on CPU).
    `kerasllm.export` traces its signatures here; `generate` (XLA-compiled) keeps
    `slice_update`, since XLA refuses `TensorStridedSliceUpdate` with a begin that is not a
    compile-time constant. See docs/serving.md for the measurements.
    """
    token = _CORE_TF_CACHE_WRITES.set(True)
    try:
        yield
    finally:
        _CORE_TF_CACHE_WRITES.reset(token)


def write_cache(cache, update, index):
    """`cache` (B, 2, kv_heads, S, head_dim) with `update` (B, 2, kv_heads, T, head_dim)
    written at position `index` of axis 3; `index + T` must not exceed S."""
    if _CORE_TF_CACHE_WRITES.get() and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        index = tf.cast(index, tf.int32)
        length = tf.shape(update)[3]
        zero = tf.zeros([], tf.int32)
        # begin/end masks 0b10111: axes 0, 1, 2 and 4 are taken whole; axis 3 is the slice.
        return tf.raw_ops.TensorStridedSliceUpdate(
            input=cache,
            begin=tf.stack([zero, zero, zero, index, zero]),
            end=tf.stack([zero, zero, zero, index + length, zero]),
            strides=tf.ones([5], tf.int32),
            value=tf.cast(update, cache.dtype),
            begin_mask=0b10111,
            end_mask=0b10111,
        )
    return ops.slice_update(cache, (0, 0, 0, index, 0), update)


# MultiHeadAttention layers (by id) whose attention logits are being recorded, each with the
# list they go to. Knowledge distillation's attention loss (TinyBERT) compares a student's and
# a teacher's logits; the fused `dot_product_attention` never materializes them, so a
# recorded layer takes the explicit path instead. Empty outside `recording_attention_logits`.
_LOGIT_RECORDERS: dict[int, list] = {}


@contextlib.contextmanager
def recording_attention_logits(layers) -> Iterator[list]:
    """While active, every full (multi-position, uncached) call of one of `layers` appends
    `(layer, logits, mask)` to the yielded list, in call order: `logits` float32
    (B, heads, T, S), scaled and with the position bias added, before masking and softmax;
    `mask` bool (B, 1, T, S), or (B, 1, 1, S) for a padding mask alone (True: attended),
    or None. Works eagerly and while tracing.

    Example:
    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, head_dim=4)
    >>> x = np.zeros((3, 5, 8), "float32")
    >>> with recording_attention_logits([layer]) as records:
    ...     _ = layer(x)
    >>> [(r[0] is layer, tuple(r[1].shape)) for r in records]
    [(True, (3, 2, 5, 5))]
    """
    records: list = []
    previous = {id(layer): _LOGIT_RECORDERS.get(id(layer)) for layer in layers}
    for layer in layers:
        _LOGIT_RECORDERS[id(layer)] = records
    try:
        yield records
    finally:
        for key, value in previous.items():
            if value is None:
                _LOGIT_RECORDERS.pop(key, None)
            else:
                _LOGIT_RECORDERS[key] = value


@keras.saving.register_keras_serializable(package="kerasllm")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head self- or cross-attention computed with `keras.ops.dot_product_attention`.

    Queries come from `query`; keys and values from `value` (cross-attention) or from `query`
    (self-attention). Masks are boolean, True where a query may attend to a key, of shape
    (batch, T, S) or anything broadcastable to it: combine causal and padding masks with
    `kerasllm.layers.masking` before calling.

    Grouped-query attention: `num_key_value_heads` < `num_heads` shares each key/value head
    between `num_heads // num_key_value_heads` query heads (1 gives multi-query attention).

    KV cache: pass `cache` of shape (batch, 2, num_key_value_heads, S_max, head_dim), heads
    before positions, so that a decoding step's attention reads it without a transpose.
    - With `cache_update_index`, the keys and values of `query`'s T new positions are written at
      that index and attention runs over all S_max slots (the mask must hide unwritten ones);
      the call returns `(output, new_cache)`.
    - Without it, the cache is taken as precomputed keys/values (cross-attention to a fixed
      source) and the call returns `(output, cache)`.

    Args:
        num_heads: query heads.
        head_dim: features per head.
        num_key_value_heads: key/value heads; defaults to `num_heads`.
        output_dim: width of the output projection; defaults to the query's width.
        use_bias: biases on the four projections (False for T5).
        qkv_bias: biases on the query, key and value projections even when `use_bias` is
            False (Qwen2: no bias on the output projection).
        dropout: dropout on attention probabilities (training only).
        scale: multiplies the logits; defaults to `head_dim ** -0.5` (T5 uses 1.0).
        rotary_max_wavelength: if set, rotary position embedding is applied to queries and keys.
        kernel_initializer: initializer of the projections.

    Example:
    >>> import numpy as np
    >>> attention = MultiHeadAttention(num_heads=2, head_dim=4)
    >>> tuple(attention(np.zeros((1, 3, 8), "float32")).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        num_key_value_heads: int | None = None,
        output_dim: int | None = None,
        use_bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
        rotary_max_wavelength: float | None = None,
        rotary_scaling: dict | None = None,
        kernel_initializer="glorot_uniform",
        qkv_bias: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_key_value_heads = num_key_value_heads or num_heads
        if num_heads % num_key_value_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must be a multiple of num_key_value_heads "
                f"({num_key_value_heads})."
            )
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_key_value_heads = num_key_value_heads
        self.output_dim = output_dim
        self.use_bias = use_bias
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.scale = scale
        self.rotary_max_wavelength = rotary_max_wavelength
        self.rotary_scaling = rotary_scaling
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.rotary = (
            RotaryEmbedding(
                rotary_max_wavelength, rotary_scaling, dtype=self.dtype_policy, name="rotary"
            )
            if rotary_max_wavelength
            else None
        )
        self.probability_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        # Qwen2's layout: `qkv_bias` adds biases to the input projections only.
        bias = self.use_bias or self.qkv_bias
        self.query_dense = make_dense(self, self.num_heads * self.head_dim, "query", bias)
        self.query_dense.build(query_shape)
        self.key_dense = make_dense(self, self.num_key_value_heads * self.head_dim, "key", bias)
        self.key_dense.build(value_shape)
        self.value_dense = make_dense(self, self.num_key_value_heads * self.head_dim, "value", bias)
        self.value_dense.build(value_shape)
        self.output_dense = make_dense(self, self.output_dim or query_shape[-1], "attention_output")
        self.output_dense.build((*query_shape[:-1], self.num_heads * self.head_dim))

    def _split_heads(self, x, heads):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], heads, self.head_dim))

    def project_key_value(self, value, start_index=0):
        """Keys and values of `value` in cache layout: (batch, 2, kv_heads, S, head_dim).

        Used to fill a cross-attention cache once per source sequence, and for the new
        positions of a self-attention cache.
        """
        key, value_states = self._keys_and_values(value, start_index)
        return ops.transpose(ops.stack([key, value_states], axis=1), (0, 1, 3, 2, 4))

    def _keys_and_values(self, value, start_index):
        key = self._split_heads(self.key_dense(value), self.num_key_value_heads)
        if self.rotary is not None:
            key = self.rotary(key, start_index=start_index)
        return key, self._split_heads(self.value_dense(value), self.num_key_value_heads)

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        position_bias=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        start = 0 if cache_update_index is None else cache_update_index
        q = self._split_heads(self.query_dense(query), self.num_heads)
        if self.rotary is not None:
            q = self.rotary(q, start_index=start)

        source = query if value is None else value
        if cache is None:
            # Training and full forward passes: no stacking into the cache layout, which would
            # copy keys and values (and their gradients) once more per layer.
            key, value_states = self._keys_and_values(source, start)
        else:
            if cache_update_index is None:
                key_value = cache  # precomputed cross-attention keys/values
            else:
                key_value = write_cache(
                    cache, self.project_key_value(source, start), cache_update_index
                )
            key, value_states = key_value[:, 0], key_value[:, 1]  # (B, kv_heads, S, head_dim)

        attended = self._attend(
            q,
            key,
            value_states,
            attention_mask,
            position_bias,
            training,
            heads_first=cache is not None,
        )
        shape = ops.shape(attended)
        output = self.output_dense(
            ops.reshape(attended, (shape[0], shape[1], self.num_heads * self.head_dim))
        )
        return output if cache is None else (output, key_value)

    def _attend(
        self, query, key, value, attention_mask, position_bias, training, heads_first=False
    ):
        """Attention of `query` (B, T, heads, head_dim) over `key`/`value`, given as
        (B, S, kv_heads, head_dim), or as (B, kv_heads, S, head_dim) (the cache layout) when
        `heads_first`."""
        if query.shape[1] == 1 and not (training and self.dropout > 0):
            if not heads_first:
                key, value = ops.transpose(key, (0, 2, 1, 3)), ops.transpose(value, (0, 2, 1, 3))
            return self._attend_single_query(query, key, value, attention_mask, position_bias)
        if heads_first:  # a prefill over the cache: the generic path takes positions first
            key, value = ops.transpose(key, (0, 2, 1, 3)), ops.transpose(value, (0, 2, 1, 3))
        groups = self.num_heads // self.num_key_value_heads
        if groups > 1:
            key = ops.repeat(key, groups, axis=2)
            value = ops.repeat(value, groups, axis=2)
        mask = None if attention_mask is None else ops.expand_dims(attention_mask, 1)
        scale = self.head_dim**-0.5 if self.scale is None else self.scale
        if scale != 1.0:
            # Scaling the (B, T, N, H) queries is cheaper than the (B, N, T, S) logits.
            query = query * ops.cast(scale, query.dtype)
        recorder = None if heads_first else _LOGIT_RECORDERS.get(id(self))
        if not (training and self.dropout > 0) and recorder is None:
            return ops.dot_product_attention(
                query, key, value, bias=position_bias, mask=mask, scale=1.0
            )
        # Dropout on the probabilities is not part of the fused op, nor are the logits a
        # recorder wants: compute them explicitly.
        logits = ops.cast(ops.einsum("btnh,bsnh->bnts", query, key), "float32")
        if position_bias is not None:
            logits = logits + ops.cast(position_bias, "float32")
        if recorder is not None:
            recorder.append((self, logits, None if mask is None else ops.cast(mask, "bool")))
        if mask is not None:
            logits = ops.where(mask, logits, -1e9)
        probabilities = ops.cast(ops.softmax(logits, axis=-1), query.dtype)
        probabilities = self.probability_dropout(probabilities, training=training)
        return ops.einsum("bnts,bsnh->btnh", probabilities, value)

    def _attend_single_query(self, query, key, value, attention_mask, position_bias):
        """Attention of one query position (a decoding step) over keys and values in cache
        layout, (B, kv_heads, S, head_dim).

        Two einsums (`dot_general`s) with grouped query heads folded as (kv_heads, groups), so
        keys and values are never repeated. A dot's operands are materialized, which matters:
        the earlier multiply-and-reduce form let XLA (CPU) fuse the query's producers (the
        rotary embedding, its cos/sin included) into the reduction, recomputing them for every
        cache slot: 1.5 ms per layer and step at batch 8 on the Llama-shaped benchmark model,
        60% of the step. The einsums are faster without rotary too (GPT-shaped model, see
        docs/generation.md).
        """
        batch = ops.shape(query)[0]
        kv_heads, groups = self.num_key_value_heads, self.num_heads // self.num_key_value_heads
        scale = self.head_dim**-0.5 if self.scale is None else self.scale
        query = ops.reshape(query, (batch, kv_heads, groups, self.head_dim))
        if scale != 1.0:
            query = query * ops.cast(scale, query.dtype)
        logits = ops.cast(ops.einsum("bkgh,bksh->bkgs", query, key), "float32")
        if position_bias is not None:  # (1 or B, num_heads, 1, S) -> (1 or B, kv, groups, S)
            bias = ops.cast(position_bias[:, :, 0, :], "float32")
            logits = logits + ops.reshape(bias, (ops.shape(bias)[0], kv_heads, groups, -1))
        if attention_mask is not None:  # (1 or B, 1, S), or (1, S)
            mask = ops.cast(attention_mask, "bool")
            mask = mask[None] if len(mask.shape) == 2 else mask
            logits = ops.where(mask[:, :, None, :], logits, -1e9)
        # Softmax over keys, written out: `ops.softmax` warns when S == 1.
        weights = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
        probabilities = ops.cast(weights / ops.sum(weights, axis=-1, keepdims=True), value.dtype)
        attended = ops.einsum("bkgs,bksh->bkgh", probabilities, value)
        return ops.reshape(attended, (batch, 1, self.num_heads, self.head_dim))

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "num_key_value_heads": self.num_key_value_heads,
            "output_dim": self.output_dim,
            "use_bias": self.use_bias,
            "qkv_bias": self.qkv_bias,
            "dropout": self.dropout,
            "scale": self.scale,
            "rotary_max_wavelength": self.rotary_max_wavelength,
            "rotary_scaling": self.rotary_scaling,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
