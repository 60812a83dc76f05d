"""The `Backbone` base class: config validation, embeddings and block construction shared by
`Encoder`, `Decoder` and `EncoderDecoder`."""

from __future__ import annotations

import contextlib
import inspect

import keras
from keras import ops

from kerasllm.layers import (
    DecoderBlock,
    EncoderBlock,
    PositionEmbedding,
    RelativePositionBias,
    SinusoidalPositionEmbedding,
    TokenEmbedding,
    masking,
)
from kerasllm.layers.embeddings import check_rope_scaling
from kerasllm.layers.feed_forward import ACTIVATIONS
from kerasllm.layers.normalization import make_norm

# Re-exported for callers that import it from here (zoo.registry); it lives in utils.validation.
from kerasllm.utils.validation import closest  # noqa: F401

POSITION_EMBEDDINGS = ("learned", "sinusoidal", "rotary", "relative")
NORM_TYPES = ("layer", "rms")

# Backbones (by id) whose block outputs are being recorded, each with the list they go to:
# knowledge distillation's hidden-state loss reads a teacher's and a student's layers this way
# (subclassed models have no functional `layer.output` to tap, which keras.distillation's
# FeatureDistillation needs). Empty outside `recording_hidden_states`.
_RECORDERS: dict[int, list] = {}


@contextlib.contextmanager
def recording_hidden_states(backbone):
    """While active, every full (uncached) pass of `backbone` appends `(stack, output)` to the
    yielded list for each transformer block, in order: stack "encoder" or "decoder", output
    (B, T, hidden_dim). Works eagerly and while tracing (the tensors of the same graph).

    Example:
    >>> from kerasllm.models import Encoder
    >>> from kerasllm.testing import TINY, random_ids
    >>> encoder = Encoder(**TINY)
    >>> with recording_hidden_states(encoder) as states:
    ...     _ = encoder({"token_ids": random_ids(2, 5)})
    >>> [(stack, tuple(x.shape)) for stack, x in states]
    [('encoder', (2, 5, 16)), ('encoder', (2, 5, 16))]
    """
    states: list = []
    previous = _RECORDERS.get(id(backbone))
    _RECORDERS[id(backbone)] = states
    try:
        yield states
    finally:
        if previous is None:
            _RECORDERS.pop(id(backbone), None)
        else:
            _RECORDERS[id(backbone)] = previous


class Backbone(keras.Model):
    """Base class of the three backbones.

    Subclasses call `super().__init__(**config)`, which validates every hyperparameter before any
    weight exists, then build their layers with the helpers below and call `_build_weights()` so
    that the model's weights exist (and `count_params()` works) right after construction.

    Config keys common to all backbones:
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
        max_sequence_length, head_dim, num_key_value_heads, position_embedding ("learned",
        "sinusoidal", "rotary", "relative"), activation, dropout, attention_dropout, norm_first,
        norm_type ("layer", "rms"), layer_norm_epsilon, use_bias, embedding_norm, embedding_scale,
        tie_embeddings, relative_num_buckets, relative_max_distance, attention_scale,
        kernel_initializer_range, rotary_max_wavelength (the rotary base, Hugging Face's
        `rope_theta`), rotary_scaling (None, or a `layers.embeddings.ROPE_SCALINGS` dict:
        Hugging Face's `rope_scaling` "linear" or "llama3"), scale_tied_logits (None: T5
        v1.0's rule, tied RMSNorm stacks without embedding scaling multiply hidden states by
        `hidden_dim ** -0.5` before the tied output projection; False: never, as Llama-family
        models with tied embeddings; True: always when tied), layer_shapes (None, or one dict
        per transformer block in `layer_blocks` order (encoder blocks first) giving that
        block's own `num_heads`, `num_key_value_heads`, `intermediate_dim` and, for blocks
        with cross-attention, `cross_attention_heads` / `cross_attention_key_value_heads`;
        what structured pruning writes, `kerasllm.compression.prune_structured`; the head
        width stays `head_dim`, or `hidden_dim // num_heads`), qkv_bias (biases on the
        attention's query, key and value projections even when `use_bias` is False: Qwen2).
    """

    # Hyperparameters every backbone stores; subclasses extend this with their own.
    def __init__(
        self,
        vocabulary_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        intermediate_dim: int,
        max_sequence_length: int = 512,
        head_dim: int | None = None,
        num_key_value_heads: int | None = None,
        position_embedding: str = "learned",
        activation: str = "gelu",
        dropout: float = 0.1,
        attention_dropout: float | None = None,
        norm_first: bool = False,
        norm_type: str = "layer",
        layer_norm_epsilon: float = 1e-12,
        use_bias: bool = True,
        embedding_norm: bool | None = None,
        embedding_scale: bool = False,
        tie_embeddings: bool = True,
        relative_num_buckets: int = 32,
        relative_max_distance: int = 128,
        attention_scale: float | None = None,
        kernel_initializer_range: float = 0.02,
        rotary_max_wavelength: float = 10000.0,
        rotary_scaling: dict | None = None,
        scale_tied_logits: bool | None = None,
        layer_shapes: list[dict] | None = None,
        qkv_bias: bool = False,
        **kwargs,
    ):
        config = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        # Pull subclass hyperparameters out of kwargs before handing the rest to keras.Model.
        for key, default in self.extra_config_defaults().items():
            config[key] = kwargs.pop(key, default)
        super().__init__(**kwargs)
        self.validate_config(config)
        if config["embedding_norm"] is None:
            # Post-norm stacks normalize embeddings (BERT); pre-norm stacks do not (GPT-2, T5).
            config["embedding_norm"] = not config["norm_first"]
        self._config = config
        for key, value in config.items():
            setattr(self, key, value)

    # ----------------------------------------------------------------- config
    @classmethod
    def extra_config_keys(cls) -> tuple[str, ...]:
        """Hyperparameters a subclass adds (with defaults in `extra_config_defaults`)."""
        return tuple(cls.extra_config_defaults())

    @classmethod
    def extra_config_defaults(cls) -> dict:
        return {}

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """Every hyperparameter name this backbone accepts."""
        params = inspect.signature(Backbone.__init__).parameters
        base = tuple(p for p in params if p not in ("self", "kwargs"))
        return base + cls.extra_config_keys()

    @classmethod
    def check_keys(cls, config: dict) -> None:
        """Raises a ValueError naming any key that is not a hyperparameter of this backbone."""
        allowed = set(cls.config_keys()) | {"name", "dtype", "trainable"}
        for key in config:
            if key not in allowed:
                raise ValueError(
                    f"Unknown {cls.__name__} config key {key!r}.{closest(key, allowed)} "
                    f"Allowed keys: {sorted(cls.config_keys())}."
                )

    @classmethod
    def validate_config(cls, config: dict) -> None:
        """Checks every hyperparameter (before any weight exists: a class method, so a search
        space can check configurations without building them); a ValueError says what is wrong
        and what is allowed. `config` itself is left unchanged (a subclass's hyperparameters
        that it omits count as their defaults)."""
        config = {**cls.extra_config_defaults(), **config}

        def positive_int(key):
            value = config[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{key}` must be a positive integer; got {value!r}.")

        for key in (
            "vocabulary_size",
            "num_layers",
            "num_heads",
            "hidden_dim",
            "intermediate_dim",
            "max_sequence_length",
        ):
            positive_int(key)
        for key in ("head_dim", "num_key_value_heads"):
            if config[key] is not None:
                positive_int(key)
        if config["head_dim"] is None and config["hidden_dim"] % config["num_heads"]:
            raise ValueError(
                f"`hidden_dim` ({config['hidden_dim']}) must be divisible by `num_heads` "
                f"({config['num_heads']}), or set `head_dim` explicitly."
            )
        kv_heads = config["num_key_value_heads"]
        if kv_heads is not None and config["num_heads"] % kv_heads:
            raise ValueError(
                f"`num_heads` ({config['num_heads']}) must be a multiple of "
                f"`num_key_value_heads` ({kv_heads})."
            )
        for key in ("dropout", "attention_dropout"):
            value = config[key]
            if value is not None and not (0.0 <= value < 1.0):
                raise ValueError(f"`{key}` must be in [0, 1); got {value!r}.")
        choices = {
            "position_embedding": POSITION_EMBEDDINGS,
            "norm_type": NORM_TYPES,
            "activation": tuple(ACTIVATIONS),
        }
        for key, allowed in choices.items():
            if config[key] not in allowed:
                raise ValueError(
                    f"`{key}` must be one of {list(allowed)}; got {config[key]!r}."
                    f"{closest(str(config[key]), allowed)}"
                )
        if config["position_embedding"] == "rotary":
            head_dim = config["head_dim"] or config["hidden_dim"] // config["num_heads"]
            if head_dim % 2:
                raise ValueError(f"Rotary embeddings need an even head_dim; got {head_dim}.")
        if config["layer_norm_epsilon"] <= 0:
            raise ValueError("`layer_norm_epsilon` must be > 0.")
        if not config["rotary_max_wavelength"] > 0:
            raise ValueError(
                f"`rotary_max_wavelength` must be > 0; got {config['rotary_max_wavelength']!r}."
            )
        check_rope_scaling(config["rotary_scaling"])
        cls._check_layer_shapes(config)
        if config["scale_tied_logits"] not in (None, True, False):
            raise ValueError(
                f"`scale_tied_logits` must be None, True or False; got "
                f"{config['scale_tied_logits']!r}."
            )

    #: Keys a `layer_shapes` entry may set.
    LAYER_SHAPE_KEYS = (
        "num_heads",
        "num_key_value_heads",
        "intermediate_dim",
        "cross_attention_heads",
        "cross_attention_key_value_heads",
    )

    @classmethod
    def num_blocks(cls, config: dict) -> int:
        """Transformer blocks a model of `config` has (the length `layer_shapes` must have)."""
        return config["num_layers"]

    @classmethod
    def _check_layer_shapes(cls, config: dict) -> None:
        shapes = config.get("layer_shapes")
        if shapes is None:
            return
        expected = cls.num_blocks(config)
        if not isinstance(shapes, (list, tuple)) or len(shapes) != expected:
            raise ValueError(
                f"`layer_shapes` must be a list of {expected} dicts (one per block); got "
                f"{shapes!r}."
            )
        default_kv = config["num_key_value_heads"]
        for index, shape in enumerate(shapes):
            if not isinstance(shape, dict):
                raise ValueError(f"`layer_shapes[{index}]` must be a dict; got {shape!r}.")
            for key, value in shape.items():
                if key not in cls.LAYER_SHAPE_KEYS:
                    raise ValueError(
                        f"Unknown key {key!r} in `layer_shapes[{index}]`."
                        f"{closest(key, cls.LAYER_SHAPE_KEYS)} Allowed: "
                        f"{list(cls.LAYER_SHAPE_KEYS)}."
                    )
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(
                        f"`layer_shapes[{index}][{key!r}]` must be a positive integer; got "
                        f"{value!r}."
                    )
            for heads_key, kv_key in (
                ("num_heads", "num_key_value_heads"),
                ("cross_attention_heads", "cross_attention_key_value_heads"),
            ):
                heads = shape.get(heads_key, config["num_heads"])
                # Without grouped-query attention, a block's key/value heads follow its heads.
                kv_heads = shape.get(kv_key, default_kv if config["num_key_value_heads"] else heads)
                if heads % kv_heads:
                    raise ValueError(
                        f"`layer_shapes[{index}]`: {heads_key} ({heads}) must be a multiple of "
                        f"{kv_key} ({kv_heads})."
                    )
                if (
                    config["position_embedding"] == "relative"
                    and heads_key == "num_heads"
                    and heads != config["num_heads"]
                ):
                    # The relative position bias is one table for the whole stack, indexed
                    # by head: a block with fewer heads would need its own head mapping.
                    raise ValueError(
                        f"`layer_shapes[{index}]`: relative position embeddings need every "
                        f"block's self-attention to keep num_heads={config['num_heads']}; got "
                        f"{heads}."
                    )

    def get_config(self):
        config = super().get_config()
        config.update(self._config)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---------------------------------------------------------- construction
    def make_initializer(self) -> keras.initializers.Initializer:
        """A fresh kernel/embedding initializer of this backbone's family (truncated normal of
        standard deviation `kernel_initializer_range`), for its own layers and for the heads
        task models put on it."""
        return keras.initializers.TruncatedNormal(stddev=self.kernel_initializer_range)

    def _make_token_embedding(self, name="token_embedding"):
        logit_scale = None
        scale = self.scale_tied_logits
        if scale is None:
            scale = self.norm_type == "rms" and not self.embedding_scale
        if self.tie_embeddings and scale:
            # T5 v1.0 rescales the decoder output before the tied projection.
            logit_scale = self.hidden_dim**-0.5
        return TokenEmbedding(
            self.vocabulary_size,
            self.hidden_dim,
            tie_weights=self.tie_embeddings,
            logit_scale=logit_scale,
            embeddings_initializer=self.make_initializer(),
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_position_embedding(self, name):
        if self.position_embedding == "learned":
            return PositionEmbedding(
                self.max_sequence_length,
                initializer=self.make_initializer(),
                dtype=self.dtype_policy,
                name=name,
            )
        if self.position_embedding == "sinusoidal":
            return SinusoidalPositionEmbedding(dtype=self.dtype_policy, name=name)
        return None  # rotary and relative positions act inside attention

    def _make_relative_bias(self, bidirectional, name):
        if self.position_embedding != "relative":
            return None
        return RelativePositionBias(
            num_heads=self.num_heads,
            num_buckets=self.relative_num_buckets,
            max_distance=self.relative_max_distance,
            bidirectional=bidirectional,
            dtype=self.dtype_policy,
            name=name,
        )

    def _block_kwargs(self):
        return dict(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            head_dim=self.head_dim,
            num_key_value_heads=self.num_key_value_heads,
            activation=self.activation,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            norm_first=self.norm_first,
            norm_type=self.norm_type,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            attention_scale=self.attention_scale,
            rotary_max_wavelength=(
                float(self.rotary_max_wavelength) if self.position_embedding == "rotary" else None
            ),
            rotary_scaling=self.rotary_scaling if self.position_embedding == "rotary" else None,
            kernel_initializer=self.make_initializer(),
            dtype=self.dtype_policy,
        )

    def _layer_block_kwargs(self, index: int) -> dict:
        """`_block_kwargs` with block `index`'s own `layer_shapes` entry (heads keep their
        width: `head_dim` is made explicit when the block's head count differs)."""
        kwargs = self._block_kwargs()
        if self.layer_shapes is not None:
            kwargs.update(self.layer_shapes[index])
            kwargs["head_dim"] = self.head_dim or self.hidden_dim // self.num_heads
        return kwargs

    def _make_encoder_blocks(self, prefix="encoder_layer"):
        return [
            EncoderBlock(**self._layer_block_kwargs(i), name=f"{prefix}_{i}")
            for i in range(self.num_layers)
        ]

    def _make_decoder_blocks(
        self, num_layers, cross_attention, prefix="decoder_layer", first_index=0
    ):
        """`first_index`: the first block's index in `layer_blocks` (after an encoder's)."""
        return [
            DecoderBlock(
                **self._layer_block_kwargs(first_index + i),
                cross_attention=cross_attention,
                name=f"{prefix}_{i}",
            )
            for i in range(num_layers)
        ]

    def _make_norm(self, name):
        return make_norm(self.norm_type, self.layer_norm_epsilon, name, dtype=self.dtype_policy)

    def _make_dropout(self, name):
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _make_embedding_layers(self, prefix=""):
        """(position embedding or None, embedding norm or None, embedding dropout) of one stack,
        named `{prefix}position_embedding`, `{prefix}embedding_norm`, `{prefix}embedding_dropout`
        (the names are part of the weight paths in checkpoints)."""
        norm = self._make_norm(f"{prefix}embedding_norm") if self.embedding_norm else None
        return (
            self._make_position_embedding(f"{prefix}position_embedding"),
            norm,
            self._make_dropout(f"{prefix}embedding_dropout"),
        )

    def _build_stack(self, layers, blocks, cross_attention=False):
        """Builds one stack's sequence-shaped layers (None entries skipped), then its blocks
        (with the encoder output shape too when they cross-attend)."""
        shape = (None, None, self.hidden_dim)
        for layer in layers:
            if isinstance(layer, RelativePositionBias):
                layer.build()
            elif layer is not None:
                layer.build(shape)
        for block in blocks:
            if cross_attention:
                block.build(shape, shape)
            else:
                block.build(shape)

    # ----------------------------------------------------------------- forward
    def _check_length(self, token_ids, start_index=0):
        """Rejects sequences longer than learned positions can represent (static shapes only)."""
        length = token_ids.shape[1]
        if (
            self.position_embedding == "learned"
            and length is not None
            and isinstance(start_index, int)
            and start_index + length > self.max_sequence_length
        ):
            raise ValueError(
                f"Sequence length {start_index + length} exceeds this model's "
                f"max_sequence_length={self.max_sequence_length}; truncate the inputs."
            )

    def _embed(
        self,
        token_ids,
        position_layer,
        norm=None,
        dropout=None,
        segment_ids=None,
        segment_layer=None,
        start_index=0,
        training=None,
    ):
        """Token (+ segment) (+ absolute position) embeddings, optional norm, dropout."""
        self._check_length(token_ids, start_index)
        x = self.token_embedding(token_ids)
        if self.embedding_scale:
            x = x * ops.cast(self.hidden_dim**0.5, x.dtype)
        if segment_layer is not None:
            if segment_ids is None:
                segment_ids = ops.zeros_like(token_ids)
            x = x + segment_layer(segment_ids)
        if position_layer is not None:
            x = x + position_layer(x, start_index=start_index)
        if norm is not None:
            x = norm(x)
        if dropout is not None:
            x = dropout(x, training=training)
        return x

    def _build_weights(self):
        """Builds every layer from dummy shapes so weights exist right after construction."""
        raise NotImplementedError

    def _zero_caches(self, batch_size, max_length, num_layers):
        """Zero self-attention caches, one (B, 2, kv_heads, max_length, head_dim) per layer
        (the last `num_layers` blocks: the decoder's; each with its own key/value heads)."""
        blocks = self.layer_blocks[len(self.layer_blocks) - num_layers :]
        return [
            ops.zeros(
                (
                    batch_size,
                    2,
                    block.self_attention.num_key_value_heads,
                    max_length,
                    block.self_attention.head_dim,
                ),
                dtype=self.compute_dtype,
            )
            for block in blocks
        ]

    def _run_encoder_blocks(self, blocks, x, padding_mask, relative_bias, training):
        """Bidirectional blocks over `x` with a padding mask (and relative position bias)."""
        length = ops.shape(x)[1]
        attention_mask = masking.padding_to_attention_mask(padding_mask)
        bias = (
            relative_bias(query_length=length, key_length=length)
            if relative_bias is not None
            else None
        )
        recorder = _RECORDERS.get(id(self))
        for block in blocks:
            x = block(x, attention_mask=attention_mask, position_bias=bias, training=training)
            if recorder is not None:
                recorder.append(("encoder", x))
        return x

    def _run_decoder_blocks(
        self,
        blocks,
        x,
        key_padding_mask,
        relative_bias,
        caches=None,
        index=0,
        training=None,
        encoder_output=None,
        cross_attention_mask=None,
        cross_caches=None,
    ):
        """Causal blocks over `x` (the new tokens at absolute positions `index..`), with or
        without self-attention caches; one code path for full passes and incremental decoding.

        `key_padding_mask` covers the keys: the tokens themselves, or every cache slot.
        Returns (x, new caches) (an empty list without caches).
        """
        query_length = ops.shape(x)[1]
        key_length = ops.shape(key_padding_mask)[1]
        self_mask = masking.merge_masks(
            masking.causal_mask(query_length, key_length, index),
            masking.padding_to_attention_mask(key_padding_mask),
        )
        bias = (
            relative_bias(query_length=query_length, key_length=key_length, query_offset=index)
            if relative_bias is not None
            else None
        )
        new_caches = []
        for i, block in enumerate(blocks):
            if caches is None:
                x = block(
                    x,
                    self_attention_mask=self_mask,
                    encoder_output=encoder_output,
                    cross_attention_mask=cross_attention_mask,
                    position_bias=bias,
                    training=training,
                )
                if _RECORDERS.get(id(self)) is not None:
                    _RECORDERS[id(self)].append(("decoder", x))
            else:
                x, cache, _ = block(
                    x,
                    self_attention_mask=self_mask,
                    cross_attention_mask=cross_attention_mask,
                    position_bias=bias,
                    self_attention_cache=caches[i],
                    cache_update_index=index,
                    cross_attention_cache=None if cross_caches is None else cross_caches[i],
                )
                new_caches.append(cache)
        return x, new_caches

    @property
    def layer_blocks(self) -> list:
        """The transformer blocks in order (decoder blocks for seq2seq), for freezing and LoRA."""
        raise NotImplementedError
