"""What the generative preprocessors share: generated ids back to text (`ids_to_text`, which the
exported signatures use too) and `generate_postprocess`."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm.preprocessors.preprocessor import Preprocessor

# Python's whitespace (`str.isspace()`) in RE2: checked equal over every code point.
# `tf.strings.strip` strips ASCII whitespace only.
SPACE = r"[\t-\r\x1c-\x20\x{85}\p{Z}]"
_SURROUNDING_SPACE = rf"^{SPACE}+|{SPACE}+$"


def ids_to_text(
    tokenizer, token_ids: tf.Tensor, keep: tf.Tensor | None = None, strip: bool = False
) -> tf.Tensor:
    """Generated ids to clean text: the one detokenization of generation outputs.

    Special tokens (pad, start, end, unknown, ...) are dropped, and invalid UTF-8 (a byte-level
    vocabulary can stop inside a character) becomes U+FFFD. The preprocessors'
    `generate_postprocess` and the exported generation signatures both call this.

    Args:
        tokenizer: the `kerasllm.tokenizers.Tokenizer` of the generated side.
        token_ids: int (B, L).
        keep: optional bool (B, L): only these positions are text (e.g. a padding mask, or a
            span of generated tokens).
        strip: remove surrounding whitespace, the characters of Python's `str.isspace()`
            (translations: a continuation keeps its leading space).

    Returns:
        string (B,).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    if keep is None:
        ids = tf.RaggedTensor.from_tensor(token_ids)
    else:
        ids = tf.ragged.boolean_mask(token_ids, tf.cast(keep, tf.bool))
    text = tokenizer.detokenize(ids, skip_special_tokens=True)
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replace_control_characters=False
    )
    if strip:
        text = tf.strings.regex_replace(text, _SURROUNDING_SPACE, "")
    return text


class GenerativePreprocessor(Preprocessor):
    """Base of `CausalLMPreprocessor` and `Seq2SeqLMPreprocessor`: `generate_postprocess`.

    Subclasses set `_STRIP_OUTPUTS` (whether generated text loses its surrounding whitespace)
    and `_OUTPUT_KEYS` (the `(token_ids, padding_mask)` keys of a dict `generate_postprocess`
    accepts, as KerasHub names them), and return the tokenizer of the generated side from
    `_output_tokenizer`.
    """

    _STRIP_OUTPUTS = False
    _OUTPUT_KEYS = ("token_ids", "padding_mask")

    def _output_tokenizer(self):
        return self._require_tokenizer()

    def generate_postprocess(self, x: Any) -> tf.Tensor:
        """Generated token ids to text: special tokens (and padding) dropped, invalid UTF-8 as
        U+FFFD, exactly as the exported generation signatures turn ids into text.

        Args:
            x: int ids (B, L) (a tensor, numpy array or list of lists; or one row (L,)), or a
                dict with the ids and a padding mask (`{"token_ids", "padding_mask"}`; for
                seq2seq also `{"decoder_token_ids", "decoder_padding_mask"}` as KerasHub
                names them), whose masked-out positions are dropped.

        Returns:
            A `tf.string` tensor (B,) (a scalar for one row).
        """
        keep = None
        if isinstance(x, dict):
            for ids_key, mask_key in (self._OUTPUT_KEYS, ("token_ids", "padding_mask")):
                if ids_key in x and mask_key in x:
                    x, keep = x[ids_key], x[mask_key]
                    break
            else:
                raise ValueError(
                    "A dict given to `generate_postprocess` needs "
                    f"{' and '.join(map(repr, self._OUTPUT_KEYS))}; got keys {sorted(x)}."
                )
        if isinstance(x, tf.RaggedTensor):
            x = x.to_tensor(0)
        elif not isinstance(x, tf.Tensor):
            x = np.asarray(x)
            if x.size == 0:
                x = x.astype(np.int32)
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_integer:
            raise TypeError(f"`generate_postprocess` needs integer token ids; got {x.dtype.name}.")
        scalar = x.shape.rank == 1
        if scalar:
            x = x[None]
            keep = None if keep is None else tf.convert_to_tensor(keep)[None]
        if x.shape.rank != 2:
            raise ValueError(f"Token ids must be 1-D or 2-D; got shape {x.shape}.")
        text = ids_to_text(self._output_tokenizer(), x, keep, strip=self._STRIP_OUTPUTS)
        return text[0] if scalar else text
