"""`Decoder`: the causal transformer backbone of the GPT family."""

from __future__ import annotations

import keras
from keras import ops

from kerasllm.models.backbone import Backbone


@keras.saving.register_keras_serializable(package="kerasllm")
class Decoder(Backbone):
    """Causal (left-to-right) transformer decoder (GPT-2, GPT-NeoX/LLaMA-style with rotary).

    Inputs: a dict with `token_ids` (B, T) and `padding_mask` (B, T). Output:
    `{"sequence_output": (B, T, hidden_dim)}`. Position t only ever sees positions <= t.

    Incremental decoding: `call_with_cache(token_ids, padding_mask, caches, index)` runs the new
    tokens at absolute positions `index..` against a (B, 2, kv_heads, S_max, head_dim) cache per
    layer (`init_cache` makes one) and returns `(hidden, new_caches)`.

    Example:
    >>> import numpy as np
    >>> decoder = Decoder(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
    ...                   intermediate_dim=32, max_sequence_length=32, norm_first=True)
    >>> tuple(decoder({"token_ids": np.ones((2, 8), "int32"),
    ...          "padding_mask": np.ones((2, 8), "int32")})["sequence_output"].shape)
    (2, 8, 16)
    """

    def __init__(self, **config):
        super().__init__(**config)
        self.token_embedding = self._make_token_embedding()
        position, norm, dropout = self._make_embedding_layers()
        self.position_layer = position
        self.embedding_layer_norm = norm
        self.embedding_dropout = dropout
        self.relative_bias = self._make_relative_bias(False, "relative_position_bias")
        self.blocks = self._make_decoder_blocks(self.num_layers, cross_attention=False)
        self.final_norm = self._make_norm("final_norm") if self.norm_first else None
        self._build_weights()

    def _build_weights(self):
        self.token_embedding.build((None, None))
        self._build_stack(
            (self.position_layer, self.embedding_layer_norm, self.relative_bias, self.final_norm),
            self.blocks,
        )
        self.built = True

    @property
    def layer_blocks(self):
        return self.blocks

    def init_cache(self, batch_size, max_length):
        """Zero self-attention caches, one (B, 2, kv_heads, max_length, head_dim) per layer."""
        return self._zero_caches(batch_size, max_length, len(self.blocks))

    def _run(self, token_ids, key_padding_mask, caches=None, index=0, training=None):
        x = self._embed(
            token_ids,
            self.position_layer,
            norm=self.embedding_layer_norm,
            dropout=self.embedding_dropout,
            start_index=index,
            training=training,
        )
        x, new_caches = self._run_decoder_blocks(
            self.blocks, x, key_padding_mask, self.relative_bias, caches, index, training
        )
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, new_caches

    def call(self, inputs, training=None):
        token_ids = inputs["token_ids"]
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids)
        x, _ = self._run(token_ids, padding_mask, training=training)
        return {"sequence_output": x}

    def call_with_cache(self, token_ids, cache_padding_mask, caches, index):
        """One incremental step: returns (hidden (B, T, H), new caches).

        Args:
            token_ids: (B, T) new tokens at absolute positions `index .. index + T - 1`.
            cache_padding_mask: (B, S_max) mask over every cache slot, 1 where a real token is
                (or will be) stored; causality hides the slots after the current position.
            caches: list of per-layer caches from `init_cache` or a previous step.
            index: absolute position of the first new token (scalar int or int tensor).
        """
        return self._run(token_ids, cache_padding_mask, caches=caches, index=index)
