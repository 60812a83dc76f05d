"""`EncoderDecoder`: the sequence-to-sequence backbone (Transformer, T5, BART)."""

from __future__ import annotations

import keras
from keras import ops

from kerasllm.layers import masking
from kerasllm.models.backbone import Backbone


@keras.saving.register_keras_serializable(package="kerasllm")
class EncoderDecoder(Backbone):
    """Encoder-decoder transformer sharing one token embedding between both stacks.

    Inputs: a dict with `encoder_token_ids`, `encoder_padding_mask` (B, S) and
    `decoder_token_ids`, `decoder_padding_mask` (B, T). Outputs:
    `{"encoder_sequence_output": (B, S, H), "decoder_sequence_output": (B, T, H)}`.

    Decoding with a cache: `encode` once, `init_cache` (self-attention caches plus
    cross-attention keys/values computed once from the encoder output), then
    `call_decoder_with_cache` per step.

    Args:
        num_decoder_layers: decoder depth; defaults to `num_layers` (the encoder depth).
        **config: shared hyperparameters, see `Backbone`.

    Example:
    >>> import numpy as np
    >>> model = EncoderDecoder(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
    ...                        intermediate_dim=32, max_sequence_length=32)
    >>> ones = np.ones((2, 8), "int32")
    >>> out = model({"encoder_token_ids": ones, "encoder_padding_mask": ones,
    ...              "decoder_token_ids": ones[:, :5], "decoder_padding_mask": ones[:, :5]})
    >>> tuple(out["decoder_sequence_output"].shape)
    (2, 5, 16)
    """

    @classmethod
    def extra_config_defaults(cls):
        return {"num_decoder_layers": None}

    @classmethod
    def validate_config(cls, config):
        super().validate_config(config)
        layers = {**cls.extra_config_defaults(), **config}["num_decoder_layers"]
        if layers is not None and (not isinstance(layers, int) or layers < 1):
            raise ValueError(f"`num_decoder_layers` must be a positive integer; got {layers!r}.")

    @classmethod
    def num_blocks(cls, config):
        return config["num_layers"] + (config.get("num_decoder_layers") or config["num_layers"])

    def __init__(self, **config):
        super().__init__(**config)
        self.token_embedding = self._make_token_embedding()
        encoder_layers = self._make_embedding_layers("encoder_")
        decoder_layers = self._make_embedding_layers("decoder_")
        # Assigned in this order (the order of the model's variables, which training
        # checkpoints store positionally).
        self.encoder_position, self.decoder_position = encoder_layers[0], decoder_layers[0]
        self.encoder_embedding_norm, self.decoder_embedding_norm = (
            encoder_layers[1],
            decoder_layers[1],
        )
        self.encoder_dropout, self.decoder_dropout = encoder_layers[2], decoder_layers[2]
        self.encoder_relative_bias = self._make_relative_bias(True, "encoder_relative_bias")
        self.decoder_relative_bias = self._make_relative_bias(False, "decoder_relative_bias")
        self.encoder_blocks = self._make_encoder_blocks()
        self.decoder_blocks = self._make_decoder_blocks(
            self.num_decoder_layers or self.num_layers,
            cross_attention=True,
            first_index=self.num_layers,
        )
        self.encoder_final_norm = self._make_norm("encoder_final_norm") if self.norm_first else None
        self.decoder_final_norm = self._make_norm("decoder_final_norm") if self.norm_first else None
        self._build_weights()

    def _build_weights(self):
        self.token_embedding.build((None, None))
        self._build_stack(
            (
                self.encoder_position,
                self.encoder_embedding_norm,
                self.encoder_relative_bias,
                self.encoder_final_norm,
            ),
            self.encoder_blocks,
        )
        self._build_stack(
            (
                self.decoder_position,
                self.decoder_embedding_norm,
                self.decoder_relative_bias,
                self.decoder_final_norm,
            ),
            self.decoder_blocks,
            cross_attention=True,
        )
        self.built = True

    @property
    def layer_blocks(self):
        return self.encoder_blocks + self.decoder_blocks

    # ------------------------------------------------------------------ encoder
    def encode(self, token_ids, padding_mask=None, training=None):
        """Runs the encoder stack; returns (B, S, H)."""
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids)
        x = self._embed(
            token_ids,
            self.encoder_position,
            norm=self.encoder_embedding_norm,
            dropout=self.encoder_dropout,
            training=training,
        )
        x = self._run_encoder_blocks(
            self.encoder_blocks, x, padding_mask, self.encoder_relative_bias, training
        )
        if self.encoder_final_norm is not None:
            x = self.encoder_final_norm(x)
        return x

    # ------------------------------------------------------------------ decoder
    def _decode(
        self,
        token_ids,
        key_padding_mask,
        encoder_output,
        encoder_padding_mask,
        self_caches=None,
        cross_caches=None,
        index=0,
        training=None,
    ):
        x = self._embed(
            token_ids,
            self.decoder_position,
            norm=self.decoder_embedding_norm,
            dropout=self.decoder_dropout,
            start_index=index,
            training=training,
        )
        x, new_caches = self._run_decoder_blocks(
            self.decoder_blocks,
            x,
            key_padding_mask,
            self.decoder_relative_bias,
            self_caches,
            index,
            training,
            encoder_output=encoder_output,
            cross_attention_mask=masking.padding_to_attention_mask(encoder_padding_mask),
            cross_caches=cross_caches,
        )
        if self.decoder_final_norm is not None:
            x = self.decoder_final_norm(x)
        return x, new_caches

    def decode(self, token_ids, padding_mask, encoder_output, encoder_padding_mask, training=None):
        """Runs the decoder stack over a whole target prefix; returns (B, T, H)."""
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids)
        x, _ = self._decode(
            token_ids, padding_mask, encoder_output, encoder_padding_mask, training=training
        )
        return x

    def call(self, inputs, training=None):
        encoder_mask = inputs.get("encoder_padding_mask")
        if encoder_mask is None:
            encoder_mask = ops.ones_like(inputs["encoder_token_ids"])
        encoder_output = self.encode(inputs["encoder_token_ids"], encoder_mask, training)
        decoder_output = self.decode(
            inputs["decoder_token_ids"],
            inputs.get("decoder_padding_mask"),
            encoder_output,
            encoder_mask,
            training=training,
        )
        return {
            "encoder_sequence_output": encoder_output,
            "decoder_sequence_output": decoder_output,
        }

    # -------------------------------------------------------------- KV caching
    def init_cache(self, encoder_output, max_length):
        """Returns (self-attention caches of zeros, cross-attention caches) for decoding.

        The cross-attention keys and values are computed here, once per source batch.
        """
        batch_size = ops.shape(encoder_output)[0]
        self_caches = self._zero_caches(batch_size, max_length, len(self.decoder_blocks))
        cross_caches = [
            block.cross_attention_layer.project_key_value(encoder_output)
            for block in self.decoder_blocks
        ]
        return self_caches, cross_caches

    def call_decoder_with_cache(
        self, token_ids, cache_padding_mask, encoder_padding_mask, self_caches, cross_caches, index
    ):
        """One incremental decoder step; returns (hidden (B, T, H), new self-attention caches).

        See `Decoder.call_with_cache` for the meaning of `cache_padding_mask` and `index`.
        """
        return self._decode(
            token_ids,
            cache_padding_mask,
            None,
            encoder_padding_mask,
            self_caches=self_caches,
            cross_caches=cross_caches,
            index=index,
        )
