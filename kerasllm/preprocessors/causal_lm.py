"""`CausalLMPreprocessor`: texts to `CausalLM` training batches, prompts to generation inputs."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kerasllm.preprocessors.generative import GenerativePreprocessor
from kerasllm.preprocessors.packing import pack_segments
from kerasllm.preprocessors.preprocessor import as_text_batch, unbatch_if


def causal_boundary_ids(tokenizer) -> tuple[int | None, int]:
    """The ids a causal-LM document is framed with, `[start] tokens [end]`: the start id (None
    when the tokenizer has none) and the end id (else the sep id).

    Raises:
        ValueError: the tokenizer has neither an end nor a sep token.
    """
    end = tokenizer.end_id if tokenizer.end_id is not None else tokenizer.sep_id
    if end is None:
        raise ValueError("Causal LM needs a tokenizer with an end (or sep) token.")
    return tokenizer.start_id, end


def prompt_start_id(tokenizer, add_start_token: bool) -> int | None:
    """The id a prompt starts with: the start id with `add_start_token` (Llama's `<s>`), else
    None (the exported generation signatures use the same).

    Raises:
        ValueError: `add_start_token` with a tokenizer without a start token.
    """
    if not add_start_token:
        return None
    if tokenizer.start_id is None:
        raise ValueError("`add_start_token=True` needs a tokenizer with a start token.")
    return tokenizer.start_id


def prompt_filler_id(tokenizer) -> int:
    """The token an empty prompt is continued from: the start id, else the end id, else 0 (the
    exported generation signatures use the same)."""
    if tokenizer.start_id is not None:
        return tokenizer.start_id
    return tokenizer.end_id if tokenizer.end_id is not None else 0


@keras.saving.register_keras_serializable(package="kerasllm")
class CausalLMPreprocessor(GenerativePreprocessor):
    """Frames texts for next-token prediction, and prompts for `CausalLM.generate`.

    Calling it on a batch of texts frames each as `[start] tokens [end]` (no start token when
    the tokenizer has none), truncated to `sequence_length + 1` ids, exactly as
    `kerasllm.data.causal_lm_dataset(..., packing=False)` does in training, and returns
    `(x, y, sample_weight)`: `x = {"token_ids", "padding_mask"}` int32 (B, L) with
    L <= `sequence_length`, `y` the same ids shifted left by one (the next tokens),
    `sample_weight` float32 (B, L), 0 where the label is padding (times `sample_weight` (B,)
    when one is given). The labels come from the texts: `y` is not accepted.

    `generate_preprocess(prompts)` tokenizes prompts for generation without framing them; a
    prompt longer than `sequence_length` tokens keeps its last ones, and an empty prompt is
    the start token (`prompt_filler_id`), as the exported `CausalLM` signatures do.
    `generate_postprocess(ids)` turns generated ids back into text.

    Args:
        tokenizer: a `kerasllm.tokenizers.Tokenizer` with an end (or sep) token.
        sequence_length: the longest model input L.
        pad_to_sequence_length: pad every batch to `sequence_length` (static shapes); by
            default a batch is padded to its longest text.
        add_start_token: put the start token before each prompt (`generate_preprocess`, the
            exported signatures), as Llama's Hugging Face tokenizers do; an over-long prompt
            keeps the start token and its last tokens. Default: prompts are not framed.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat", "the dog ran"] * 20, vocabulary_size=60)
    >>> pre = CausalLMPreprocessor(tok, sequence_length=8)
    >>> x, y, w = pre(["the cat sat"])
    >>> x["token_ids"].numpy()[0, 1:].tolist() == y.numpy()[0, :-1].tolist()
    True
    >>> int(y[0, -1]) == tok.end_id, w.numpy().tolist()
    (True, [[1.0, 1.0, 1.0, 1.0]])
    >>> pre.generate_preprocess(["the dog ran"], sequence_length=2)["token_ids"].shape
    TensorShape([1, 2])
    """

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 128,
        pad_to_sequence_length: bool = False,
        add_start_token: bool = False,
        **kwargs,
    ):
        super().__init__(tokenizer, sequence_length, pad_to_sequence_length, **kwargs)
        self.add_start_token = bool(add_start_token)
        if tokenizer is not None:
            causal_boundary_ids(tokenizer)  # a clear error now, not at the first batch
            prompt_start_id(tokenizer, self.add_start_token)

    def call(self, x, y=None, sample_weight=None):
        if y is not None:
            raise ValueError(
                "CausalLMPreprocessor takes texts only: its labels are the texts' next tokens. "
                "Pass `x` alone (fit(texts)), not `y`."
            )
        texts, scalar = as_text_batch(x, "x")
        start, end = causal_boundary_ids(self._require_tokenizer())
        # One id more than the inputs: inputs are the first L ids, labels the last L. An empty
        # text is `[start] [end]` (with no start token, a pad filler keeps its input non-empty).
        packed = pack_segments(
            [self.tokenize(texts)],
            self.sequence_length + 1,
            start,
            end,
            filler_id=None if start is not None else 0,
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        ids, mask = packed["token_ids"], packed["padding_mask"]
        # An empty batch keeps one (padding) input column, as every preprocessor gives.
        spare = tf.maximum(2 - tf.shape(ids)[1], 0)
        ids = tf.pad(ids, [[0, 0], [0, spare]])
        mask = tf.pad(mask, [[0, 0], [0, spare]])
        inputs = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}
        labels = ids[:, 1:]
        weights = tf.cast(mask[:, 1:], tf.float32)
        if sample_weight is not None:
            weights *= tf.cast(sample_weight, tf.float32)[..., None]
        return keras.utils.pack_x_y_sample_weight(*unbatch_if(scalar, (inputs, labels, weights)))

    def generate_preprocess(self, x: Any, sequence_length: int | None = None) -> dict:
        """Prompts to generation inputs: `{"token_ids", "padding_mask"}` int32 (B, L).

        Args:
            x: a string or a batch of strings.
            sequence_length: the longest prompt in tokens (default `sequence_length`); longer
                prompts keep their last tokens.
        """
        texts, scalar = as_text_batch(x, "x")
        tokenizer = self._require_tokenizer()
        first = prompt_start_id(tokenizer, self.add_start_token)
        packed = pack_segments(
            [self.tokenize(texts)],
            self.sequence_length if sequence_length is None else sequence_length,
            first,
            # A framed prompt always holds its start token: no filler then.
            filler_id=prompt_filler_id(tokenizer) if first is None else None,
            keep="last",
        )
        out = {"token_ids": packed["token_ids"], "padding_mask": packed["padding_mask"]}
        return unbatch_if(scalar, out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "add_start_token": self.add_start_token}
