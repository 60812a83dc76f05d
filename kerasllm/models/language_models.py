"""Language-model tasks: `MaskedLM`, `CausalLM`, `Seq2SeqLM`."""

from __future__ import annotations

import keras
from keras import ops

from kerasllm import _compat
from kerasllm.models.decoder import Decoder
from kerasllm.models.encoder import Encoder
from kerasllm.models.encoder_decoder import EncoderDecoder
from kerasllm.models.task import Task


class _Generative:
    """What the generative tasks share: the vocabulary projection (`logits`) and the `tokenizer`
    attribute that `generate` uses for string inputs.

    It is a runtime attribute, not part of the model: never in `get_config`, checkpoints or
    SavedModels (the export bundles its tokenizer explicitly). Setting it to a tokenizer whose
    vocabulary size differs from the model's raises a `ValueError` giving both sizes: such a
    model would generate ids the tokenizer cannot turn back into text.
    """

    tokenizer = None

    def __setattr__(self, name, value):
        if name == "tokenizer":
            if value is not None:
                # Imported here: the models do not load the tokenizer ops (keras_hub, tf_text).
                from kerasllm.tokenizers.base import check_vocabulary_match

                check_vocabulary_match(self, value, f"{type(self).__name__}.tokenizer")
            value = _compat.untracked(value)  # keep TF object tracking off it
        super().__setattr__(name, value)

    def logits(self, hidden):
        """Float32 vocabulary logits of hidden states, through the tied token embedding."""
        return self._float32(self.backbone.token_embedding(hidden, reverse=True))


@keras.saving.register_keras_serializable(package="kerasllm")
class MaskedLM(Task):
    """Masked language model (BERT pretraining head) on an `Encoder`.

    The head is BERT's: dense + GELU + LayerNorm, then the tied token embedding and an output bias,
    evaluated only at `mask_positions` (B, P) so the vocabulary projection costs P, not T, rows.

    Returns float32 logits (B, P, vocabulary_size).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> mlm = MaskedLM(encoder)
    >>> tuple(mlm({"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32"),
    ...      "mask_positions": np.array([[1, 2], [3, 0]])}).shape)
    (2, 2, 50)
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(Encoder)
        hidden = backbone.hidden_dim
        self.head_dense = keras.layers.Dense(
            hidden,
            activation="gelu",
            kernel_initializer=backbone.make_initializer(),
            dtype=backbone.dtype_policy,
            name="mlm_dense",
        )
        self.head_norm = keras.layers.LayerNormalization(
            epsilon=backbone.layer_norm_epsilon, dtype=backbone.dtype_policy, name="mlm_norm"
        )
        self.head_dense.build((None, None, hidden))
        self.head_norm.build((None, None, hidden))
        self.output_bias = self.add_weight(
            name="mlm_output_bias", shape=(backbone.vocabulary_size,), initializer="zeros"
        )
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.backbone(inputs, training=training)["sequence_output"]
        positions = ops.cast(inputs["mask_positions"], "int32")
        gathered = ops.take_along_axis(hidden, positions[:, :, None], axis=1)
        gathered = self.head_norm(self.head_dense(gathered))
        logits = self.backbone.token_embedding(gathered, reverse=True)
        return self._float32(logits) + ops.cast(self.output_bias, "float32")


@keras.saving.register_keras_serializable(package="kerasllm")
class CausalLM(_Generative, Task):
    """Next-token language model on a `Decoder`; logits through the tied embedding.

    `call(inputs)` returns float32 logits (B, T, vocabulary_size). `call_with_cache` runs one
    incremental decoding step over the KV cache (see `Decoder.call_with_cache`).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Decoder
    >>> decoder = Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16, norm_first=True)
    >>> tuple(CausalLM(decoder)({"token_ids": np.ones((2, 6), "int32"),
    ...                    "padding_mask": np.ones((2, 6), "int32")}).shape)
    (2, 6, 50)
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(Decoder)
        self.built = True

    def call(self, inputs, training=None):
        return self.logits(self.backbone(inputs, training=training)["sequence_output"])

    def init_cache(self, batch_size, max_length):
        return self.backbone.init_cache(batch_size, max_length)

    def call_with_cache(self, token_ids, cache_padding_mask, caches, index):
        """Returns (logits (B, T, V), hidden (B, T, H), new caches)."""
        hidden, caches = self.backbone.call_with_cache(token_ids, cache_padding_mask, caches, index)
        return self.logits(hidden), hidden, caches

    def generate(
        self,
        inputs,
        max_new_tokens: int = 32,
        sampler="greedy",
        stop_token_ids="auto",
        seed: int | None = None,
        strip_prompt: bool = False,
    ):
        """Continues prompts (strings when `self.tokenizer` is set, or token ids).

        See `kerasllm.generation.generate` for the arguments and return values.

        Example:
        >>> from kerasllm.models import Decoder
        >>> lm = CausalLM(Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
        ...                       intermediate_dim=16, max_sequence_length=32))
        >>> lm.generate([[5, 6, 7], [8, 9]], max_new_tokens=4, sampler="top_k", seed=0).shape
        (2, 7)
        """
        from kerasllm.generation import generate

        return generate(
            self,
            inputs,
            max_new_tokens=max_new_tokens,
            sampler=sampler,
            stop_token_ids=stop_token_ids,
            seed=seed,
            strip_prompt=strip_prompt,
        )


@keras.saving.register_keras_serializable(package="kerasllm")
class Seq2SeqLM(_Generative, Task):
    """Sequence-to-sequence language model on an `EncoderDecoder` (translation, summarization).

    `call(inputs)` returns float32 decoder logits (B, T, vocabulary_size) under teacher forcing.
    For decoding: `encode`, then `init_cache`, then `call_decoder_with_cache` per step.

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import EncoderDecoder
    >>> backbone = EncoderDecoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                           intermediate_dim=16, max_sequence_length=16)
    >>> ones = np.ones((2, 6), "int32")
    >>> tuple(Seq2SeqLM(backbone)({"encoder_token_ids": ones, "encoder_padding_mask": ones,
    ...                      "decoder_token_ids": ones, "decoder_padding_mask": ones}).shape)
    (2, 6, 50)
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(EncoderDecoder)
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.backbone(inputs, training=training)
        return self.logits(outputs["decoder_sequence_output"])

    def encode(self, token_ids, padding_mask=None):
        return self.backbone.encode(token_ids, padding_mask)

    def init_cache(self, encoder_output, max_length):
        return self.backbone.init_cache(encoder_output, max_length)

    def call_decoder_with_cache(
        self, token_ids, cache_padding_mask, encoder_padding_mask, self_caches, cross_caches, index
    ):
        """Returns (logits (B, T, V), hidden (B, T, H), new self-attention caches)."""
        hidden, self_caches = self.backbone.call_decoder_with_cache(
            token_ids, cache_padding_mask, encoder_padding_mask, self_caches, cross_caches, index
        )
        return self.logits(hidden), hidden, self_caches

    def generate(
        self,
        inputs,
        max_new_tokens: int = 32,
        sampler="greedy",
        stop_token_ids="auto",
        seed: int | None = None,
        start_id: int | None = None,
    ):
        """Generates a target for each source (strings with `self.tokenizer`, or token ids).

        The decoder starts from `start_id` (default: the tokenizer's start id) and, with the
        default `stop_token_ids="auto"`, stops at the tokenizer's end id. See
        `kerasllm.generation.generate` for the arguments and return values.

        Example:
        >>> from kerasllm.models import EncoderDecoder
        >>> lm = Seq2SeqLM(EncoderDecoder(vocabulary_size=50, num_layers=1, num_heads=2,
        ...                               hidden_dim=8, intermediate_dim=16,
        ...                               max_sequence_length=32))
        >>> lm.generate([[5, 6, 7]], max_new_tokens=4, sampler="beam", start_id=1).shape
        (1, 4)
        """
        from kerasllm.generation import generate

        return generate(
            self,
            inputs,
            max_new_tokens=max_new_tokens,
            sampler=sampler,
            stop_token_ids=stop_token_ids,
            seed=seed,
            start_id=start_id,
        )
