"""Serving modules: a task model and its tokenizers in one `tf.Module`, with text signatures.

One class per model family. Each holds the model (its variables) and its tokenizers (their
lookup tables and SentencePiece models) as tracked attributes, so `tf.saved_model.save` writes
them all, and defines its signatures as `tf.function`s with fixed input signatures:

- `Seq2SeqLM`: `serving_default` (text -> translation, greedy), `translate_max_length`
  (+ max_length), `translate_beam` (beam search, + score), `translate_token_ids`.
- `CausalLM`: `serving_default` (prompt -> completion, greedy), `generate_sampled`
  (+ max_new_tokens, temperature, top_k, top_p, seed), `generate_token_ids`.
- `SequenceClassifier`: `serving_default` (text -> probabilities, class_id, label),
  `classify_pairs` (text_a, text_b: sentence pairs), `embed`, `classify_token_ids`.
- `TokenClassifier`: `serving_default` (text -> words, one label per word),
  `classify_token_ids` (one label per token).
- `Encoder`, `MaskedLM`: `serving_default` (text -> pooled embedding), `embed_token_ids`.
- `QuestionAnswerer`: `serving_default` (question, context -> answer, score, start, end;
  `kerasllm.export.question_answering`).

A SignatureDef has no optional inputs, so settings that a client may change are separate
signatures with extra inputs; the plain signatures use the defaults fixed at export time.

Every signature runs behind one wrapper (`_guarded`): inputs of the wrong rank fail with
INVALID_ARGUMENT naming the input, and an empty batch gets empty outputs without running the
model. Signatures are traced with `core_tf_cache_writes`, so the graph holds no XLA op.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import tensorflow as tf
from keras import ops

from kerasllm import _compat
from kerasllm.export.sampling import RuntimeSampler
from kerasllm.export.text import check_token_ids, decode, encode
from kerasllm.generation import BeamSampler, GreedySampler, decode_causal, decode_seq2seq
from kerasllm.layers.attention import core_tf_cache_writes
from kerasllm.models import (
    CausalLM,
    Encoder,
    MaskedLM,
    QuestionAnswerer,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)
from kerasllm.preprocessors.causal_lm import prompt_filler_id, prompt_start_id
from kerasllm.preprocessors.packing import framing_ids, pack_segments
from kerasllm.preprocessors.text_classifier import TextClassifierPreprocessor
from kerasllm.preprocessors.token_classifier import TokenClassifierPreprocessor
from kerasllm.tokenizers.base import check_vocabulary_match

_TEXT = tf.TensorSpec([None], tf.string)
_IDS = tf.TensorSpec([None, None], tf.int32)
_INT = tf.TensorSpec([], tf.int32)
_FLOAT = tf.TensorSpec([], tf.float32)

#: Strings each text signature is warmed up with (TF Serving replays them at load time).
WARMUP_TEXTS = ("Hello, world.", "")


def _positions_limit(backbone) -> int:
    return int(backbone.max_sequence_length)


class ServingModule(tf.Module):
    """Base class: holds the model and tokenizers; subclasses add signatures.

    Attributes:
        signature_functions: `{signature name: tf.function}` in the order they are exported.
    """

    def __init__(self, model, tokenizers: dict, metadata: dict | None = None):
        super().__init__(name="kerasllm_serving")
        self.model = model
        # Tracked attributes: `tf.saved_model.save` writes their resources (vocabulary tables,
        # SentencePiece protos) into the SavedModel.
        self.tokenizers = dict(tokenizers)
        self.metadata = _compat.untracked(dict(metadata or {}))
        self.signature_functions: dict = _compat.untracked({})

    def _add(self, name: str, fn, *specs: tf.TensorSpec) -> None:
        """Registers `fn` as signature `name`, behind the checks every signature shares.

        `fn` sees only well-formed, non-empty batches: `_guarded` rejects inputs whose rank
        differs from `specs` and answers an empty batch with empty outputs without calling it.
        """
        body = tf.function(fn, input_signature=list(specs), autograph=False)
        names = list(inspect.signature(fn).parameters)

        @functools.wraps(fn)  # the SignatureDef's input names are `fn`'s parameter names
        def signature(*args):
            return _guarded(body, dict(zip(names, args)), dict(zip(names, specs)))

        function = tf.function(signature, input_signature=list(specs), autograph=False)
        self.signature_functions[name] = function
        # Kept off the module's attributes: TF Serving calls SignatureDefs only, and saving
        # each function again as a restorable method took the save from 5.6 s to 20 s.

    def signatures(self) -> dict:
        """`{name: concrete function}` for `tf.saved_model.save(..., signatures=...)`.

        Traced with `core_tf_cache_writes`, so the decoding loops write their KV caches with
        a core TensorFlow op rather than `XlaDynamicUpdateSlice`: the served graph is not
        XLA-compiled and holds no `Xla*` op.
        """
        with core_tf_cache_writes():
            return {
                name: fn.get_concrete_function() for name, fn in self.signature_functions.items()
            }

    def warmup_requests(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """`(signature name, inputs)` pairs for the warm-up file; every signature once."""
        requests = []
        for name, fn in self.signature_functions.items():
            inputs = {}
            for spec_name, spec in zip(_arg_names(fn), fn.input_signature):
                inputs[spec_name] = self._warmup_value(spec_name, spec)
            requests.append((name, inputs))
        return requests

    def _warmup_value(self, name: str, spec: tf.TensorSpec) -> np.ndarray:
        if spec.dtype == tf.string:
            return np.array([t.encode() for t in WARMUP_TEXTS], dtype=object)
        if spec.shape.rank == 2:
            if name == "token_ids":
                return np.array([[1, 2, 3], [4, 5, 0]], np.int32)
            return np.array([[1, 1, 1], [1, 1, 0]], np.int32)
        return np.array(self._scalar_defaults().get(name, 1), spec.dtype.as_numpy_dtype)

    def _scalar_defaults(self) -> dict:
        return {}


def _arg_names(fn) -> list[str]:
    return list(inspect.signature(fn.python_function).parameters)


def _runtime_rank(x: tf.Tensor) -> tf.Tensor:
    """The rank `x` has when the graph runs, as an int32 scalar.

    Neither TF Serving nor a loaded SavedModel's signature checks a request's shapes against
    the SignatureDef, yet Grappler folds `Rank`, `Size` and `EnsureShape` of a signature input
    to what its spec declares (measured: `tf.rank` of a (1, 2) string input read 1 after
    loading). `ParseTensor`'s output has no static shape, so the rank of this round trip is
    computed from the tensor actually fed.
    """
    return tf.rank(tf.io.parse_tensor(tf.io.serialize_tensor(x), out_type=x.dtype))


def _rank_rule(name: str, rank: int) -> str:
    if rank == 0:
        return f"`{name}` must be a scalar (shape [])"
    if rank == 1:
        return f"`{name}` must be a 1-D batch (shape [batch])"
    return f"`{name}` must be {rank}-D (shape [batch, length])"


def _guarded(body, inputs: dict, specs: dict) -> dict:
    """Runs a signature's `body` on `inputs` after the checks every signature shares.

    - Each input must have its spec's rank, else the request fails with INVALID_ARGUMENT
      saying what is allowed: a 2-D string batch would otherwise be flattened by the
      tokenizer (1 row in, 2 rows out) and a vector `max_length` would reach the decoding
      loop.
    - Batched inputs (rank >= 1) must agree on the batch size.
    - An empty batch returns empty outputs of the right dtypes without running the model:
      tokenizing, framing and decoding zero rows reduce over empty tensors (`reduce_max` of
      no lengths is the dtype's minimum) and fail on `Range` / `SequenceMask`.
    """
    checks = [
        tf.debugging.assert_equal(
            _runtime_rank(value),
            specs[name].shape.rank,
            message=_rank_rule(name, specs[name].shape.rank),
        )
        for name, value in inputs.items()
    ]
    batched = [name for name, spec in specs.items() if spec.shape.rank]
    with tf.control_dependencies(checks):
        batch = tf.shape(inputs[batched[0]])[0]
    checks.extend(
        tf.debugging.assert_equal(
            tf.shape(inputs[name])[0],
            batch,
            message=f"`{name}` and `{batched[0]}` must have the same batch size",
        )
        for name in batched[1:]
    )
    with tf.control_dependencies(checks):
        inputs = {name: tf.identity(value) for name, value in inputs.items()}
        batch = tf.identity(batch)
    # The body's trace gives the output structure (dtypes, static inner dimensions).
    outputs = body.get_concrete_function().structured_outputs

    def empty():
        return {key: _empty(value) for key, value in outputs.items()}

    return tf.cond(batch > 0, lambda: body(**inputs), empty)


def _empty(like: tf.Tensor) -> tf.Tensor:
    """A tensor of `like`'s dtype with batch size 0 (unknown inner dimensions as 0)."""
    return tf.zeros([0, *(dim or 0 for dim in like.shape[1:])], like.dtype)


# ---------------------------------------------------------------------------------- seq2seq
class Seq2SeqServing(ServingModule):
    """Translation (any seq2seq task) signatures for a `Seq2SeqLM`.

    Args:
        model: the `Seq2SeqLM`.
        source_tokenizer, target_tokenizer: tokenizers of each side; the target one needs
            start and end tokens.
        source_length: sources are truncated to this many tokens (default: the model's
            `max_sequence_length`).
        max_length: default most generated tokens per source (default: as many as the
            model's positions allow).
        beams: beam width of `translate_beam`.
        length_penalty: beam search's length normalization exponent.
        source_start_token, source_end_token: frame sources (text, and the ids of
            `translate_token_ids`) as `[start] tokens [end]`, as `Seq2SeqLMPreprocessor`
            with the same options does.
    """

    def __init__(
        self,
        model,
        source_tokenizer,
        target_tokenizer,
        source_length: int | None = None,
        max_length: int | None = None,
        beams: int = 4,
        length_penalty: float = 1.0,
        metadata: dict | None = None,
        source_start_token: bool = False,
        source_end_token: bool = False,
    ):
        super().__init__(model, {"source": source_tokenizer, "target": target_tokenizer}, metadata)
        self.source_first, self.source_last = framing_ids(
            source_tokenizer, source_start_token, source_end_token
        )
        limit = _positions_limit(model.backbone)
        if target_tokenizer.start_id is None or target_tokenizer.end_id is None:
            raise ValueError("A seq2seq export needs a target tokenizer with start and end tokens.")
        self.source_length = _bounded("source_length", source_length or limit, limit)
        self.max_length = _bounded("max_length", max_length or limit - 1, limit - 1)
        # The decoder cache holds the start token and the generated tokens; every step attends
        # over all of it, so the fixed-length signatures size it to `max_length`, and only
        # `translate_max_length` (any length the positions allow) takes the model's limit.
        self.cache_length = 1 + self.max_length
        self.position_limit = limit
        self.beams = _bounded("beams", beams, 64)
        self.length_penalty = float(length_penalty)
        self._add("serving_default", self._serve, _TEXT)
        self._add("translate_max_length", self._serve_max_length, _TEXT, _INT)
        self._add("translate_beam", self._serve_beam, _TEXT)
        self._add("translate_token_ids", self._serve_token_ids, _IDS, _IDS)

    def _scalar_defaults(self):
        return {"max_length": self.max_length}

    def _generate(self, ids, mask, max_new_tokens, sampler, cache_length=None):
        target = self.tokenizers["target"]
        cache_length = cache_length or self.cache_length
        return decode_seq2seq(
            self.model,
            ids,
            mask,
            start_id=target.start_id,
            cache_length=cache_length,
            max_new_tokens=tf.clip_by_value(max_new_tokens, 1, cache_length - 1),
            sampler=sampler,
            stop_token_ids=[target.end_id],
        )

    def _translate(self, text, max_new_tokens, sampler, cache_length=None):
        source = self.tokenizers["source"]
        ids, mask, is_empty = encode(
            source, text, self.source_length, self.source_first, self.source_last
        )
        out = self._generate(ids, mask, max_new_tokens, sampler, cache_length)
        starts = tf.ones_like(out["lengths"])
        target = self.tokenizers["target"]
        translation = decode(target, out["token_ids"], starts, out["lengths"], is_empty, strip=True)
        return translation, out

    def _serve(self, text):
        translation, _ = self._translate(text, self.max_length, GreedySampler())
        return {"translation": translation}

    def _serve_max_length(self, text, max_length):
        translation, _ = self._translate(text, max_length, GreedySampler(), self.position_limit)
        return {"translation": translation}

    def _serve_beam(self, text):
        sampler = BeamSampler(self.beams, self.length_penalty)
        translation, out = self._translate(text, self.max_length, sampler)
        return {"translation": translation, "score": out["scores"]}

    def _serve_token_ids(self, token_ids, padding_mask):
        token_ids, padding_mask = check_token_ids(
            token_ids, padding_mask, self.model.backbone.vocabulary_size
        )
        # Framed as text sources are (`encode`): cut to `source_length`, and a row without
        # tokens gets one masked-in pad token (attention needs a key).
        sources = tf.RaggedTensor.from_tensor(token_ids, lengths=tf.reduce_sum(padding_mask, 1))
        packed = pack_segments(
            [sources], self.source_length, self.source_first, self.source_last, return_empty=True
        )
        is_empty = packed["is_empty"]
        out = self._generate(
            packed["token_ids"], packed["padding_mask"], self.max_length, GreedySampler()
        )
        # Drop the start token: the output is what was generated, end token included. A
        # source without tokens translates to nothing, as an empty text translates to "".
        return {
            "token_ids": tf.where(is_empty[:, None], 0, out["token_ids"][:, 1:]),
            "lengths": tf.where(is_empty, 0, out["lengths"] - 1),
        }


def _at_least_one(padding_mask):
    """The mask with its first column set, so every row has at least one key."""
    first = tf.range(tf.shape(padding_mask)[1])[None, :] == 0
    return tf.where(first, tf.ones_like(padding_mask), padding_mask)


# ---------------------------------------------------------------------------------- causal
class CausalLMServing(ServingModule):
    """Text-generation signatures for a `CausalLM`.

    Prompts longer than `max_sequence_length - max_length` tokens keep their last tokens. An
    empty prompt starts from the tokenizer's start token (or its end token, or id 0).

    Args:
        model: the `CausalLM`.
        tokenizer: its tokenizer.
        max_length: default most new tokens per prompt; also reserves room in the cache.
        add_start_token: put the start token before each text prompt, as
            `CausalLMPreprocessor(add_start_token=True)` does.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_length: int | None = None,
        metadata=None,
        add_start_token: bool = False,
    ):
        super().__init__(model, {"text": tokenizer}, metadata)
        limit = _positions_limit(model.backbone)
        if limit < 2:
            raise ValueError(f"The model's max_sequence_length {limit} leaves no room to generate.")
        self.cache_length = limit
        self.max_length = _bounded("max_length", max_length or min(32, limit // 2), limit - 1)
        self.prompt_length = limit - self.max_length
        # An empty prompt is continued from this token, as `CausalLMPreprocessor` does.
        self.filler_id = prompt_filler_id(tokenizer)
        self.prompt_first = prompt_start_id(tokenizer, add_start_token)
        self.stop_ids = [tokenizer.end_id] if tokenizer.end_id is not None else []
        self._add("serving_default", self._serve, _TEXT)
        self._add("generate_sampled", self._serve_sampled, _TEXT, _INT, _FLOAT, _INT, _FLOAT, _INT)
        self._add("generate_token_ids", self._serve_token_ids, _IDS, _IDS, _INT)

    def _scalar_defaults(self):
        return {"max_new_tokens": self.max_length, "temperature": 1.0, "top_k": 5, "top_p": 0.9}

    def _generate(self, ids, lengths, max_new_tokens, sampler, seed=0):
        return decode_causal(
            self.model,
            ids,
            lengths,
            cache_length=self.cache_length,
            max_new_tokens=tf.clip_by_value(max_new_tokens, 1, self.cache_length - 1),
            sampler=sampler,
            stop_token_ids=self.stop_ids,
            seed=seed,
        )

    def _complete(self, prompt, max_new_tokens, sampler, seed=0):
        tokenizer = self.tokenizers["text"]
        # A framed prompt always holds its start token: no filler then.
        ids, mask, _ = encode(
            tokenizer,
            prompt,
            self.prompt_length,
            self.prompt_first,
            filler_id=self.filler_id if self.prompt_first is None else None,
            keep="last",
        )
        lengths = tf.reduce_sum(mask, axis=1)
        out = self._generate(ids, lengths, max_new_tokens, sampler, seed)
        return decode(tokenizer, out["token_ids"], lengths, out["lengths"])

    def _serve(self, prompt):
        return {"completion": self._complete(prompt, self.max_length, GreedySampler())}

    def _serve_sampled(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        sampler = RuntimeSampler(temperature, top_k, top_p)
        return {"completion": self._complete(prompt, max_new_tokens, sampler, seed)}

    def _serve_token_ids(self, token_ids, padding_mask, max_new_tokens):
        token_ids, padding_mask = check_token_ids(
            token_ids, padding_mask, self.model.backbone.vocabulary_size
        )
        lengths = tf.reduce_sum(padding_mask, axis=1)
        too_long = tf.debugging.assert_less_equal(
            lengths,
            self.prompt_length,
            message=f"prompts may hold at most {self.prompt_length} tokens",
        )
        with tf.control_dependencies([too_long]):
            prompts = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
        # Framed as text prompts are: an empty prompt is continued from the filler token (so
        # both paths generate the same tokens).
        packed = pack_segments([prompts], self.prompt_length, filler_id=self.filler_id)
        lengths = tf.reduce_sum(packed["padding_mask"], axis=1)
        out = self._generate(packed["token_ids"], lengths, max_new_tokens, GreedySampler())
        # New tokens only, left-aligned, padded with 0.
        new = _drop_prefix(out["token_ids"], lengths, out["lengths"])
        return {"token_ids": new, "lengths": out["lengths"] - lengths}


def _drop_prefix(token_ids, starts, ends):
    """(B, L) ids: the span [starts, ends) of each row moved to the front, 0 after it."""
    positions = tf.range(tf.shape(token_ids)[1])[None, :]
    keep = (positions >= starts[:, None]) & (positions < ends[:, None])
    return tf.ragged.boolean_mask(token_ids, keep).to_tensor(
        default_value=0, shape=tf.shape(token_ids)
    )


# ------------------------------------------------------------------------------ encoders
class EncoderServing(ServingModule):
    """Embedding signatures for an `Encoder` (or a `MaskedLM`'s encoder), and classification
    signatures for a `SequenceClassifier`.

    Text is framed by a `TextClassifierPreprocessor` (`[cls] tokens [sep]`, else start/end,
    truncated to `sequence_length` tokens), the framing of training
    (`kerasllm.data.classification_dataset`) and of `SequenceClassifier.predict`. A classifier
    also gets `classify_pairs(text_a, text_b)`: each pair framed by the same preprocessor as
    `model.predict((texts_a, texts_b))` frames it (`[cls] a [sep] b [sep]`, segment ids 0/1,
    round-robin truncation).

    Args:
        model: an `Encoder`, `MaskedLM` or `SequenceClassifier`.
        tokenizer: its tokenizer.
        sequence_length: longest input (default: the model's `max_sequence_length`).
        label_names: class names for the `label` output (default: "0", "1", ...).
    """

    def __init__(self, model, tokenizer, sequence_length=None, label_names=None, metadata=None):
        super().__init__(model, {"text": tokenizer}, metadata)
        backbone = model if isinstance(model, Encoder) else model.backbone
        self.backbone = backbone
        limit = _positions_limit(backbone)
        self.sequence_length = _bounded("sequence_length", sequence_length or limit, limit)
        # Untracked: its tokenizer's resources are saved through `self.tokenizers`.
        self.preprocessor = _compat.untracked(
            TextClassifierPreprocessor(tokenizer, self.sequence_length)
        )
        self.classifier = isinstance(model, SequenceClassifier)
        if self.classifier:
            self.label_names = _compat.untracked(_label_names(label_names, model.num_classes))
            self._add("serving_default", self._serve_classify, _TEXT)
            # Two string inputs rather than one (B, 2) tensor: a SignatureDef input has one
            # dtype and shape, and `_guarded` checks that both sides have the same batch size.
            self._add("classify_pairs", self._serve_classify_pairs, _TEXT, _TEXT)
            self._add("embed", self._serve_embed, _TEXT)
            self._add("classify_token_ids", self._serve_classify_ids, _IDS, _IDS)
        else:
            self._add("serving_default", self._serve_embed, _TEXT)
            self._add("embed_token_ids", self._serve_embed_ids, _IDS, _IDS)

    def _encode(self, text):
        x = self.preprocessor(text)
        return x["token_ids"], x["padding_mask"]

    def _encode_pairs(self, text_a, text_b):
        # A tuple is the preprocessor's sentence-pair input, as in `model.predict((a, b))`.
        x = self.preprocessor((text_a, text_b))
        return x["token_ids"], x["padding_mask"], x["segment_ids"]

    def _checked(self, token_ids, padding_mask):
        return _checked_ids(
            token_ids, padding_mask, self.backbone.vocabulary_size, self.sequence_length
        )

    def _embedding(self, ids, mask):
        outputs = self.backbone({"token_ids": ids, "padding_mask": mask})
        if self.classifier:
            return self.model.pool(outputs, mask)  # the features the classifier head sees
        if getattr(self.backbone, "pooler", False):
            return outputs["pooled_output"]
        weights = ops.cast(mask, outputs["sequence_output"].dtype)[:, :, None]
        total = ops.sum(outputs["sequence_output"] * weights, axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), 1)

    def _classify(self, ids, mask, segment_ids=None):
        inputs = {"token_ids": ids, "padding_mask": mask}
        if segment_ids is not None:
            inputs["segment_ids"] = segment_ids
        logits = self.model(inputs)
        probabilities, class_id, label = _predictions(logits, self.label_names)
        return {"probabilities": probabilities, "class_id": class_id, "label": label}

    def _serve_classify(self, text):
        return self._classify(*self._encode(text))

    def _serve_classify_pairs(self, text_a, text_b):
        return self._classify(*self._encode_pairs(text_a, text_b))

    def _serve_classify_ids(self, token_ids, padding_mask):
        return self._classify(*self._checked(token_ids, padding_mask))

    def _serve_embed(self, text):
        return {"embedding": tf.cast(self._embedding(*self._encode(text)), tf.float32)}

    def _serve_embed_ids(self, token_ids, padding_mask):
        ids, mask = self._checked(token_ids, padding_mask)
        return {"embedding": tf.cast(self._embedding(ids, mask), tf.float32)}


class TokenClassifierServing(ServingModule):
    """Tagging signatures (NER, part of speech) for a `TokenClassifier`.

    `serving_default` splits text at whitespace into words and tokenizes them with a
    `TokenClassifierPreprocessor` (the alignment `kerasllm.data.token_classification_dataset`
    trains with: a word's label sits on its first sub-word), and returns one label per word:
    `words` and `labels` (string, B x W, padded with ""), `class_ids` (int32, -1 for padding
    and for words past `sequence_length` tokens or without any token, which are not
    classified) and `probabilities` (float32, B x W x classes). `classify_token_ids` labels
    every token of client-tokenized input.

    Args:
        model: the `TokenClassifier`.
        tokenizer: its tokenizer.
        sequence_length: longest input in tokens (default: the model's `max_sequence_length`).
        label_names: tag names in class-id order (default: "0", "1", ...).
    """

    def __init__(self, model, tokenizer, sequence_length=None, label_names=None, metadata=None):
        super().__init__(model, {"text": tokenizer}, metadata)
        limit = _positions_limit(model.backbone)
        self.sequence_length = _bounded("sequence_length", sequence_length or limit, limit)
        # Untracked: its tokenizer's resources are saved through `self.tokenizers`.
        self.preprocessor = _compat.untracked(
            TokenClassifierPreprocessor(tokenizer, self.sequence_length)
        )
        self.label_names = _compat.untracked(_label_names(label_names, model.num_classes))
        self._add("serving_default", self._serve_text, _TEXT)
        self._add("classify_token_ids", self._serve_ids, _IDS, _IDS)

    def _labels(self, logits, classified):
        probabilities, class_ids, labels = _predictions(logits, self.label_names)
        return {
            "probabilities": tf.where(classified[..., None], probabilities, 0.0),
            "class_ids": tf.where(classified, class_ids, -1),
            "labels": tf.where(classified, labels, ""),
        }

    def _serve_text(self, text):
        encoded = self.preprocessor.encode(text)
        inputs = {k: encoded[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        logits = tf.gather(self.model(inputs), encoded["first_token"], batch_dims=1)
        return {"words": encoded["words"], **self._labels(logits, encoded["classified"])}

    def _serve_ids(self, token_ids, padding_mask):
        token_ids, padding_mask = check_token_ids(
            token_ids, padding_mask, self.model.backbone.vocabulary_size
        )
        # Only the client's tokens are labelled: a row without tokens gets no label, as an
        # empty text gets no word (`_at_least_one` adds a key for attention only).
        padding_mask = padding_mask[:, : self.sequence_length]
        inputs = {"token_ids": token_ids[:, : self.sequence_length]}
        logits = self.model({**inputs, "padding_mask": _at_least_one(padding_mask)})
        return self._labels(logits, padding_mask == 1)


def _checked_ids(token_ids, padding_mask, vocabulary_size: int, length: int):
    """Client token ids checked (`check_token_ids`) and truncated to `length`; no row is left
    fully masked."""
    token_ids, padding_mask = check_token_ids(token_ids, padding_mask, vocabulary_size)
    return token_ids[:, :length], _at_least_one(padding_mask[:, :length])


def _predictions(logits, label_names: list[str]):
    """(probabilities float32, class ids int32, label strings) over the last axis of logits."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return probabilities, class_ids, tf.gather(tf.constant(label_names), class_ids)


def _label_names(names, num_classes: int) -> list[str]:
    names = list(names) if names else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} label names for a {num_classes}-class classifier.")
    return names


def _bounded(name: str, value, maximum: int) -> int:
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or not (1 <= value <= maximum)
    ):
        raise ValueError(f"`{name}` must be an integer in [1, {maximum}]; got {value!r}.")
    return int(value)


def serving_module(
    model,
    tokenizers: dict,
    metadata: dict | None = None,
    max_length: int | None = None,
    beams: int = 4,
    length_penalty: float = 1.0,
) -> ServingModule:
    """The serving module for a task model and its tokenizers (by role).

    Args:
        model: a `Seq2SeqLM`, `CausalLM`, `SequenceClassifier`, `TokenClassifier`, `MaskedLM`
            or `Encoder`.
        tokenizers: `{"source", "target"}` for seq2seq models, `{"text"}` otherwise.
        metadata: the bundle's metadata; `source_length` / `sequence_length` bound inputs,
            `target_length` bounds outputs and `label_names` names classes when present.
        max_length: default most generated tokens (generative models).
        beams: beam width of `translate_beam`.
        length_penalty: beam search's length normalization exponent.

    Raises:
        ValueError: an unsupported model or missing tokenizer role.
    """
    metadata = dict(metadata or {})
    check_vocabulary_match(model, tokenizers, "export")

    def role(name, fallback=None):
        tokenizer = tokenizers.get(name, tokenizers.get(fallback) if fallback else None)
        if tokenizer is None:
            raise ValueError(
                f"A {type(model).__name__} export needs a {name!r} tokenizer; the bundle has "
                f"{sorted(tokenizers)}."
            )
        return tokenizer

    if isinstance(model, Seq2SeqLM):
        source = role("source", "text")
        limit = model.backbone.max_sequence_length
        return Seq2SeqServing(
            model,
            source,
            role("target", "source") if "target" in tokenizers else source,
            source_length=min(int(metadata.get("source_length", limit)), limit),
            max_length=max_length or min(int(metadata.get("target_length", limit)), limit) - 1,
            beams=beams,
            length_penalty=length_penalty,
            metadata=metadata,
            source_start_token=_framing(model, metadata, "source_start_token"),
            source_end_token=_framing(model, metadata, "source_end_token"),
        )
    if isinstance(model, CausalLM):
        start = _framing(model, metadata, "add_start_token")
        return CausalLMServing(model, role("text"), max_length, metadata, start)
    if isinstance(model, QuestionAnswerer):
        # Imported here: that module builds on this one's `ServingModule`.
        from kerasllm.export.question_answering import QuestionAnswererServing

        limit = model.backbone.max_sequence_length
        length = metadata.get("sequence_length")
        return QuestionAnswererServing(
            model,
            role("text"),
            None if length is None else min(int(length), limit),
            metadata=metadata,
        )
    if isinstance(model, (TokenClassifier, SequenceClassifier, MaskedLM, Encoder)):
        backbone = model if isinstance(model, Encoder) else model.backbone
        limit = backbone.max_sequence_length
        module = TokenClassifierServing if isinstance(model, TokenClassifier) else EncoderServing
        return module(
            model,
            role("text"),
            min(int(metadata.get("sequence_length", limit)), limit),
            metadata.get("label_names"),
            metadata,
        )
    raise ValueError(
        f"Cannot export a {type(model).__name__}: supported models are Seq2SeqLM, CausalLM, "
        "SequenceClassifier, TokenClassifier, MaskedLM and Encoder."
    )


def _framing(model, metadata: dict, option: str) -> bool:
    """A source / prompt framing option (`Seq2SeqLMPreprocessor.source_start_token`, ...):
    the model's preprocessor's (a bundle's or an imported checkpoint's model carries it, as
    `zoo.get` sets it from the family's framing), else the bundle metadata's, else False."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None and hasattr(preprocessor, option):
        return bool(getattr(preprocessor, option))
    return bool(metadata.get(option, False))
