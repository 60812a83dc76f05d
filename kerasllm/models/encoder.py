"""`Encoder`: the bidirectional transformer backbone of the BERT family."""

from __future__ import annotations

import keras
from keras import ops

from kerasllm.models.backbone import Backbone


@keras.saving.register_keras_serializable(package="kerasllm")
class Encoder(Backbone):
    """Bidirectional transformer encoder (BERT, RoBERTa, MiniLM, the Transformer encoder).

    Inputs: a dict with `token_ids` (B, T), `padding_mask` (B, T; 1 for real tokens) and optionally
    `segment_ids` (B, T). T may be anything up to `max_sequence_length`.

    Outputs: `{"sequence_output": (B, T, hidden_dim), "pooled_output": (B, hidden_dim)}`; the
    pooled output is `tanh(dense(h[:, 0]))` when `pooler` is True (BERT), else `h[:, 0]`.

    Args:
        num_segments: segment (token type) vocabulary; 0 disables segment embeddings.
        pooler: whether to add BERT's dense tanh pooler on the first token.
        **config: shared hyperparameters, see `Backbone`.

    Example:
    >>> import numpy as np
    >>> encoder = Encoder(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
    ...                   intermediate_dim=32, max_sequence_length=32)
    >>> out = encoder({"token_ids": np.ones((2, 8), "int32"),
    ...                "padding_mask": np.ones((2, 8), "int32")})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((2, 8, 16), (2, 16))
    """

    @classmethod
    def extra_config_defaults(cls):
        return {"num_segments": 2, "pooler": True}

    def __init__(self, **config):
        super().__init__(**config)
        self.token_embedding = self._make_token_embedding()
        self.segment_embedding = (
            keras.layers.Embedding(
                self.num_segments,
                self.hidden_dim,
                embeddings_initializer=self.make_initializer(),
                dtype=self.dtype_policy,
                name="segment_embedding",
            )
            if self.num_segments
            else None
        )
        position, norm, dropout = self._make_embedding_layers()
        self.position_layer = position
        self.embedding_layer_norm = norm
        self.embedding_dropout = dropout
        self.relative_bias = self._make_relative_bias(True, "relative_position_bias")
        self.blocks = self._make_encoder_blocks()
        self.final_norm = self._make_norm("final_norm") if self.norm_first else None
        self.pooler_dense = (
            keras.layers.Dense(
                self.hidden_dim,
                activation="tanh",
                kernel_initializer=self.make_initializer(),
                dtype=self.dtype_policy,
                name="pooler",
            )
            if self.pooler
            else None
        )
        self._build_weights()

    def _build_weights(self):
        self.token_embedding.build((None, None))
        if self.segment_embedding is not None:
            self.segment_embedding.build((None, None))
        self._build_stack(
            (self.position_layer, self.embedding_layer_norm, self.relative_bias, self.final_norm),
            self.blocks,
        )
        if self.pooler_dense is not None:
            self.pooler_dense.build((None, self.hidden_dim))
        self.built = True

    @property
    def layer_blocks(self):
        return self.blocks

    def call(self, inputs, training=None):
        token_ids = inputs["token_ids"]
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids)
        x = self._embed(
            token_ids,
            self.position_layer,
            norm=self.embedding_layer_norm,
            dropout=self.embedding_dropout,
            segment_ids=inputs.get("segment_ids"),
            segment_layer=self.segment_embedding,
            training=training,
        )
        x = self._run_encoder_blocks(self.blocks, x, padding_mask, self.relative_bias, training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        first = x[:, 0, :]
        pooled = self.pooler_dense(first) if self.pooler_dense is not None else first
        return {"sequence_output": x, "pooled_output": pooled}
