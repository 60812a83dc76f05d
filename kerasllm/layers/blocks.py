"""Transformer encoder and decoder blocks (pre-norm or post-norm)."""

from __future__ import annotations

import keras

from kerasllm.layers.attention import MultiHeadAttention
from kerasllm.layers.feed_forward import FeedForward
from kerasllm.layers.normalization import make_norm


class TransformerBlock(keras.layers.Layer):
    """Shared machinery of `EncoderBlock` and `DecoderBlock`: residual sub-layers with dropout.

    Post-norm (BERT, Vaswani et al.): `x = norm(x + dropout(f(x)))`.
    Pre-norm (GPT-2, T5): `x = x + dropout(f(norm(x)))`; the backbone adds a final norm.

    Args:
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        head_dim: features per head; defaults to `hidden_dim // num_heads`.
        num_key_value_heads: grouped-query attention; defaults to `num_heads`.
        activation: feed-forward activation (see `FeedForward.ACTIVATIONS`).
        dropout: residual dropout.
        attention_dropout: dropout on attention probabilities; defaults to `dropout`.
        norm_first: pre-norm if True, post-norm otherwise.
        norm_type: "layer" (LayerNorm) or "rms" (RMSNorm).
        layer_norm_epsilon: epsilon of the norms.
        use_bias: biases in attention and feed-forward projections.
        attention_scale: logit scale; defaults to `head_dim ** -0.5`.
        rotary_max_wavelength: apply rotary position embedding in self-attention when set.
        rotary_scaling: the rotary frequencies' scaling (see `RotaryEmbedding`), or None.
        kernel_initializer: initializer of every projection.
        qkv_bias: biases on the attention's query, key and value projections even when
            `use_bias` is False (Qwen2).
    """

    def __init__(
        self,
        num_heads: int,
        intermediate_dim: int,
        head_dim: int | None = None,
        num_key_value_heads: int | None = None,
        activation: str = "gelu",
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        norm_first: bool = False,
        norm_type: str = "layer",
        layer_norm_epsilon: float = 1e-5,
        use_bias: bool = True,
        attention_scale: float | None = None,
        rotary_max_wavelength: float | None = None,
        rotary_scaling: dict | None = None,
        kernel_initializer="glorot_uniform",
        qkv_bias: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.head_dim = head_dim
        self.num_key_value_heads = num_key_value_heads
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.norm_first = norm_first
        self.norm_type = norm_type
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_bias = use_bias
        self.qkv_bias = qkv_bias
        self.attention_scale = attention_scale
        self.rotary_max_wavelength = rotary_max_wavelength
        self.rotary_scaling = rotary_scaling
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _attention(self, hidden_dim, name, rotary, num_heads=None, num_key_value_heads=None):
        return MultiHeadAttention(
            num_heads=num_heads or self.num_heads,
            head_dim=self.head_dim or hidden_dim // self.num_heads,
            num_key_value_heads=num_key_value_heads or self.num_key_value_heads,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            dropout=self.attention_dropout,
            scale=self.attention_scale,
            rotary_max_wavelength=self.rotary_max_wavelength if rotary else None,
            rotary_scaling=self.rotary_scaling if rotary else None,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name):
        return make_norm(self.norm_type, self.layer_norm_epsilon, name, dtype=self.dtype_policy)

    def _dropout(self, name):
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _build_feed_forward(self, input_shape):
        self.feed_forward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(input_shape)
        self.feed_forward_norm = self._norm("feed_forward_norm")
        self.feed_forward_norm.build(input_shape)
        self.feed_forward_dropout = self._dropout("feed_forward_dropout")

    def _residual(self, x, norm, dropout, sublayer, training):
        """Applies `sublayer` with a residual connection; returns (x, sublayer's extra outputs)."""
        out = sublayer(norm(x) if self.norm_first else x)
        extra = None
        if isinstance(out, tuple):
            out, extra = out
        x = x + dropout(out, training=training)
        return (x if self.norm_first else norm(x)), extra

    def _feed_forward_residual(self, x, training):
        x, _ = self._residual(
            x,
            self.feed_forward_norm,
            self.feed_forward_dropout,
            lambda h: self.feed_forward(h, training=training),
            training,
        )
        return x

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "head_dim": self.head_dim,
            "num_key_value_heads": self.num_key_value_heads,
            "activation": self.activation,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "norm_first": self.norm_first,
            "norm_type": self.norm_type,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "use_bias": self.use_bias,
            "qkv_bias": self.qkv_bias,
            "attention_scale": self.attention_scale,
            "rotary_max_wavelength": self.rotary_max_wavelength,
            "rotary_scaling": self.rotary_scaling,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="kerasllm")
class EncoderBlock(TransformerBlock):
    """Bidirectional self-attention + feed-forward (BERT, the Transformer and T5 encoders).

    `call(x, attention_mask=None, position_bias=None)`; `attention_mask` is a boolean
    (batch, T, T) mask (build it from a padding mask with `masking.padding_to_attention_mask`).

    Example:
    >>> import numpy as np
    >>> tuple(EncoderBlock(num_heads=2, intermediate_dim=16)(np.zeros((1, 4, 8), "float32")).shape)
    (1, 4, 8)
    """

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        self.self_attention = self._attention(hidden_dim, "self_attention", rotary=True)
        self.self_attention.build(input_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(input_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self._build_feed_forward(input_shape)

    def call(self, x, attention_mask=None, position_bias=None, training=None):
        x, _ = self._residual(
            x,
            self.self_attention_norm,
            self.self_attention_dropout,
            lambda h: self.self_attention(
                h, attention_mask=attention_mask, position_bias=position_bias, training=training
            ),
            training,
        )
        return self._feed_forward_residual(x, training)


@keras.saving.register_keras_serializable(package="kerasllm")
class DecoderBlock(TransformerBlock):
    """Causal self-attention, optional cross-attention, feed-forward (GPT, seq2seq decoders).

    The caller passes the full self-attention mask (causal AND padding, see
    `kerasllm.layers.masking`), so that cached and uncached decoding share one code path.

    `call(x, self_attention_mask, encoder_output=None, cross_attention_mask=None,
    position_bias=None, self_attention_cache=None, cache_update_index=None,
    cross_attention_cache=None)`. With a self-attention cache the call returns
    `(x, self_attention_cache, cross_attention_cache)`.

    Args:
        cross_attention: whether the block attends to an encoder output.
        cross_attention_heads: query heads of the cross-attention; defaults to `num_heads`
            (fewer after structured pruning, `kerasllm.compression.prune_structured`).
        cross_attention_key_value_heads: its key/value heads; defaults to
            `num_key_value_heads`.
        **kwargs: see `TransformerBlock`.
    """

    def __init__(
        self,
        *args,
        cross_attention: bool = False,
        cross_attention_heads: int | None = None,
        cross_attention_key_value_heads: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.cross_attention = cross_attention
        self.cross_attention_heads = cross_attention_heads
        self.cross_attention_key_value_heads = cross_attention_key_value_heads

    def build(self, x_shape, encoder_output_shape=None):
        input_shape = x_shape
        hidden_dim = input_shape[-1]
        self.self_attention = self._attention(hidden_dim, "self_attention", rotary=True)
        self.self_attention.build(input_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(input_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        if self.cross_attention:
            self.cross_attention_layer = self._attention(
                hidden_dim,
                "cross_attention",
                False,
                self.cross_attention_heads,
                self.cross_attention_key_value_heads,
            )
            self.cross_attention_layer.build(input_shape, encoder_output_shape or input_shape)
            self.cross_attention_norm = self._norm("cross_attention_norm")
            self.cross_attention_norm.build(input_shape)
            self.cross_attention_dropout = self._dropout("cross_attention_dropout")
        self._build_feed_forward(input_shape)

    def call(
        self,
        x,
        self_attention_mask=None,
        encoder_output=None,
        cross_attention_mask=None,
        position_bias=None,
        self_attention_cache=None,
        cache_update_index=None,
        cross_attention_cache=None,
        training=None,
    ):
        x, self_attention_cache = self._residual(
            x,
            self.self_attention_norm,
            self.self_attention_dropout,
            lambda h: self.self_attention(
                h,
                attention_mask=self_attention_mask,
                position_bias=position_bias,
                cache=self_attention_cache,
                cache_update_index=cache_update_index,
                training=training,
            ),
            training,
        )
        if self.cross_attention:
            if encoder_output is None and cross_attention_cache is None:
                raise ValueError(
                    "This DecoderBlock has cross-attention: pass `encoder_output` or a "
                    "precomputed `cross_attention_cache`."
                )
            x, cross_attention_cache = self._residual(
                x,
                self.cross_attention_norm,
                self.cross_attention_dropout,
                lambda h: self.cross_attention_layer(
                    h,
                    value=encoder_output,
                    attention_mask=cross_attention_mask,
                    cache=cross_attention_cache,
                    training=training,
                ),
                training,
            )
        x = self._feed_forward_residual(x, training)
        if self_attention_cache is None:
            return x
        return x, self_attention_cache, cross_attention_cache

    def get_config(self):
        config = {**super().get_config(), "cross_attention": self.cross_attention}
        # Written only when set, so configs of unpruned blocks stay as they were.
        config["cross_attention_heads"] = self.cross_attention_heads
        config["cross_attention_key_value_heads"] = self.cross_attention_key_value_heads
        return config
