"""Language-model tasks: `MaskedLM`, `CausalLM`, `Seq2SeqLM`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kerasllm import _compat
from kerasllm.models.decoder import Decoder
from kerasllm.models.encoder import Encoder
from kerasllm.models.encoder_decoder import EncoderDecoder
from kerasllm.models.task import Task
from kerasllm.preprocessors.causal_lm import CausalLMPreprocessor
from kerasllm.preprocessors.masked_lm import MaskedLMPreprocessor
from kerasllm.preprocessors.seq2seq_lm import Seq2SeqLMPreprocessor
from kerasllm.utils.validation import is_int


def _is_text(inputs: Any) -> bool:
    """Whether `generate` inputs are text (a string, or a batch of strings) rather than ids."""
    if isinstance(inputs, (str, bytes)):
        return True
    if isinstance(inputs, (list, tuple)):
        return bool(inputs) and all(isinstance(x, (str, bytes)) for x in inputs)
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in ("U", "S") or (
            inputs.dtype == object and inputs.size > 0 and isinstance(inputs.flat[0], (str, bytes))
        )
    dtype = getattr(inputs, "dtype", None)
    return getattr(dtype, "name", None) == "string"  # a tf.string tensor


class _Generative:
    """What the generative tasks share: the vocabulary projection (`logits`), `generate` on text
    through the model's preprocessor, and the `tokenizer` attribute that `generate` uses for
    string inputs when the model has no preprocessor.

    The tokenizer is a runtime attribute, not part of the model: never in `get_config`,
    checkpoints or SavedModels (the export bundles its tokenizer explicitly; the preprocessor,
    which `.keras` files do keep, holds its own). Setting it to a tokenizer whose vocabulary
    size differs from the model's raises a `ValueError` giving both sizes: such a model would
    generate ids the tokenizer cannot turn back into text.
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

    def _generate(self, inputs, **settings):
        """`kerasllm.generation.generate` on ids; on text, through the preprocessor when the
        model has one (its `generate_preprocess` / `generate_postprocess`, the framing and
        detokenization the exported signatures use), else through `self.tokenizer`."""
        from kerasllm.generation import generate

        text_capable = self.preprocessor is not None or self.tokenizer is not None
        if isinstance(inputs, (list, tuple)) and not inputs and text_capable:
            return []  # no text in, no text out
        if self.preprocessor is None or not _is_text(inputs):
            return generate(self, inputs, **settings)
        from kerasllm.preprocessors.preprocessor import as_strings

        texts = as_strings(list(inputs) if isinstance(inputs, tuple) else inputs, "inputs")
        single = texts.shape.rank == 0
        model_inputs, blank, settings = self._text_generation_inputs(
            texts[None] if single else texts, settings
        )
        stop = settings["stop_token_ids"]
        if isinstance(stop, str) and stop == "auto":
            end_id = self.preprocessor._output_tokenizer().end_id
            settings["stop_token_ids"] = None if end_id is None else [end_id]
        outputs = generate(self, model_inputs, **settings)
        scores = None
        if isinstance(outputs, tuple):  # `BeamSampler(return_all_beams=True)`
            outputs, scores = outputs
        ids = np.asarray(outputs)
        # Stop tokens are not text (the tokenizer's end token is special anyway).
        stop_ids = settings["stop_token_ids"]
        if stop_ids is not None:
            ids = np.where(np.isin(ids, np.asarray(stop_ids, np.int64)), 0, ids)
        flat = self.preprocessor.generate_postprocess(ids.reshape(-1, ids.shape[-1]))
        texts = [t.decode("utf-8", errors="replace") for t in flat.numpy()]
        per_input = ids.shape[1] if ids.ndim == 3 else 1  # all beams, best first
        texts = ["" if blank[i // per_input] else t for i, t in enumerate(texts)]
        if ids.ndim == 3:
            texts = [texts[i : i + per_input] for i in range(0, len(texts), per_input)]
        if single:
            texts = texts[0]
            scores = None if scores is None else scores[0]
        return texts if scores is None else (texts, scores)

    def _text_generation_inputs(self, texts, settings: dict):
        """(model inputs as `generate` takes them, rows to blank, settings) for texts."""
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="kerasllm")
class MaskedLM(Task):
    """Masked language model (BERT pretraining head) on an `Encoder`.

    The head is BERT's: dense + GELU + LayerNorm, then the tied token embedding and an output bias,
    evaluated only at `mask_positions` (B, P) so the vocabulary projection costs P, not T, rows.

    Returns float32 logits (B, P, vocabulary_size).

    With `next_sentence_prediction=True` it also has BERT's next-sentence head, a dense layer
    with two outputs on the encoder's pooled output (class 1: segment B follows segment A in
    the document; 0: B is a random sentence), and returns `{"mlm": (B, P, V), "nsp": (B, 2)}`,
    the outputs `kerasllm.training.objectives.MaskedLM(next_sentence_prediction=True)` trains on
    (batches from `kerasllm.data.next_sentence_dataset`). Its weights are named `nsp/...`, so a
    checkpoint of it loads into a classifier (or a plain `MaskedLM`) by path, the head aside.

    Args:
        backbone: an `Encoder` (the next-sentence head reads its `pooled_output`: BERT's
            pooler, or the first token's state without one).
        next_sentence_prediction: add the next-sentence head and return both outputs.
        preprocessor: optional `kerasllm.preprocessors.MaskedLMPreprocessor` (it frames single
            texts: MLM batches; NSP batches come from `kerasllm.data.next_sentence_dataset`).

    Example:
    >>> import numpy as np
    >>> from kerasllm.models import Encoder
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> mlm = MaskedLM(encoder)
    >>> tuple(mlm({"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32"),
    ...      "mask_positions": np.array([[1, 2], [3, 0]])}).shape)
    (2, 2, 50)
    >>> nsp = MaskedLM(encoder, next_sentence_prediction=True)
    >>> out = nsp({"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32"),
    ...            "mask_positions": np.array([[1, 2], [3, 0]])})
    >>> tuple(out["mlm"].shape), tuple(out["nsp"].shape)
    ((2, 2, 50), (2, 2))
    """

    #: What `kerasllm.preprocessors.for_task` builds for this task (texts in, masked batches out).
    preprocessor_class = MaskedLMPreprocessor

    def __init__(self, backbone, next_sentence_prediction: bool = False, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(Encoder)
        if not isinstance(next_sentence_prediction, bool):
            raise TypeError(
                "`next_sentence_prediction` must be True or False; got "
                f"{next_sentence_prediction!r}."
            )
        self.next_sentence_prediction = next_sentence_prediction
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
        self.nsp_head = None
        if next_sentence_prediction:
            # BERT's next-sentence classifier: one dense layer on the pooled [CLS] state.
            self.nsp_head = keras.layers.Dense(
                2,
                kernel_initializer=backbone.make_initializer(),
                dtype=backbone.dtype_policy,
                name="nsp",
            )
            self.nsp_head.build((None, hidden))
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.backbone(inputs, training=training)
        positions = ops.cast(inputs["mask_positions"], "int32")
        gathered = ops.take_along_axis(outputs["sequence_output"], positions[:, :, None], axis=1)
        gathered = self.head_norm(self.head_dense(gathered))
        logits = self.backbone.token_embedding(gathered, reverse=True)
        logits = self._float32(logits) + ops.cast(self.output_bias, "float32")
        if self.nsp_head is None:
            return logits
        return {"mlm": logits, "nsp": self._float32(self.nsp_head(outputs["pooled_output"]))}

    def default_loss(self):
        """Cross-entropy on the logits; with next-sentence prediction, one per output (a dict
        `{"mlm": ..., "nsp": ...}`, as `compile` takes for dict outputs)."""
        if self.nsp_head is None:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {
            "mlm": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        }

    def get_config(self):
        return {**super().get_config(), "next_sentence_prediction": self.next_sentence_prediction}


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

    #: What `kerasllm.preprocessors.for_task` builds for this task (texts in, text generated).
    preprocessor_class = CausalLMPreprocessor

    def __init__(self, backbone, **kwargs):
        super().__init__(backbone, **kwargs)
        self._require_backbone(Decoder)
        self.built = True

    def call(self, inputs, training=None):
        return self.logits(self.backbone(inputs, training=training)["sequence_output"])

    def init_cache(self, batch_size, max_length):
        return self.backbone.init_cache(batch_size, max_length)

    def call_with_cache(self, token_ids, cache_padding_mask, caches, index):
        """One incremental decoding step: returns (logits (B, T, V), hidden (B, T, H), new
        caches); see `Decoder.call_with_cache` for the arguments.

        This is the step contract of generation: `kerasllm.generation` (and through it
        `generate` and the SavedModel export) drives a causal LM only through `init_cache`,
        this method and `logits`, never through the backbone, so a subclass that changes a
        step changes generation too.
        """
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
        """Continues prompts: text (with a preprocessor or `self.tokenizer`) or token ids.

        Text in, text out: a string gives a string, a list of strings a list (an empty list
        an empty list). With a `preprocessor` (a `CausalLMPreprocessor`, which
        `kerasllm.bundle.load` and `zoo.get` attach), prompts are framed by its
        `generate_preprocess`, as the exported signatures frame them: a prompt longer than
        the preprocessor's `sequence_length` (or than `max_sequence_length - max_new_tokens`)
        keeps its last tokens, an empty prompt continues from the start token; outputs go
        through its `generate_postprocess` (special tokens dropped, invalid UTF-8 as U+FFFD).
        Without one, `self.tokenizer` tokenizes and detokenizes. Token ids in give token ids
        out. See `kerasllm.generation.generate` for the arguments and return values.

        Example:
        >>> from kerasllm.models import Decoder
        >>> lm = CausalLM(Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
        ...                       intermediate_dim=16, max_sequence_length=32))
        >>> lm.generate([[5, 6, 7], [8, 9]], max_new_tokens=4, sampler="top_k", seed=0).shape
        (2, 7)
        """
        return self._generate(
            inputs,
            max_new_tokens=max_new_tokens,
            sampler=sampler,
            stop_token_ids=stop_token_ids,
            seed=seed,
            strip_prompt=strip_prompt,
        )

    def _text_generation_inputs(self, texts, settings: dict):
        prompt_length = self.preprocessor.sequence_length
        new_tokens = settings["max_new_tokens"]
        if is_int(new_tokens) and self.backbone.max_sequence_length - new_tokens >= 1:
            # Room for the new tokens, as the exported signatures leave it.
            prompt_length = min(prompt_length, self.backbone.max_sequence_length - new_tokens)
        inputs = self.preprocessor.generate_preprocess(texts, sequence_length=prompt_length)
        return inputs, np.zeros([int(texts.shape[0])], bool), settings


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

    #: What `kerasllm.preprocessors.for_task` builds for this task (source/target texts).
    preprocessor_class = Seq2SeqLMPreprocessor

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
        """One incremental decoder step: returns (logits (B, T, V), hidden (B, T, H), new
        self-attention caches); see `EncoderDecoder.call_decoder_with_cache`.

        This is the step contract of generation: `kerasllm.generation` (and through it
        `generate`, `TextToText` and the SavedModel export) drives a seq2seq LM only through
        `encode`, `init_cache`, this method and `logits`, never through the backbone.
        """
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
        """Generates a target for each source: text (with a preprocessor or `self.tokenizer`)
        or token ids.

        Text in, text out: a string gives a string, a list of strings a list (an empty list
        an empty list). With a `preprocessor` (a `Seq2SeqLMPreprocessor`, which
        `kerasllm.bundle.load` and `zoo.get` attach), sources are tokenized and cut to its
        `encoder_sequence_length` by `generate_preprocess`, and targets detokenized by
        `generate_postprocess` with the target tokenizer, without surrounding whitespace, as
        the exported translation signatures do (an empty source gives ""). Without one,
        `self.tokenizer` serves both sides. The decoder starts from `start_id` (default: the
        target tokenizer's start id) and, with the default `stop_token_ids="auto"`, stops at
        its end id. See `kerasllm.generation.generate` for the arguments and return values.

        Example:
        >>> from kerasllm.models import EncoderDecoder
        >>> lm = Seq2SeqLM(EncoderDecoder(vocabulary_size=50, num_layers=1, num_heads=2,
        ...                               hidden_dim=8, intermediate_dim=16,
        ...                               max_sequence_length=32))
        >>> lm.generate([[5, 6, 7]], max_new_tokens=4, sampler="beam", start_id=1).shape
        (1, 4)
        """
        return self._generate(
            inputs,
            max_new_tokens=max_new_tokens,
            sampler=sampler,
            stop_token_ids=stop_token_ids,
            seed=seed,
            start_id=start_id,
        )

    def _text_generation_inputs(self, texts, settings: dict):
        framed = self.preprocessor.frame_sources(texts)
        inputs = {
            "token_ids": framed["encoder_token_ids"],
            "padding_mask": framed["encoder_padding_mask"],
        }
        if settings["start_id"] is None:
            settings = {**settings, "start_id": self.preprocessor.target_tokenizer.start_id}
        return inputs, framed["is_empty"].numpy(), settings
