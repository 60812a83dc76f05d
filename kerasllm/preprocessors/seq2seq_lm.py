"""`Seq2SeqLMPreprocessor`: (source, target) texts to `Seq2SeqLM` batches, sources to
generation inputs."""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from kerasllm.preprocessors.generative import GenerativePreprocessor
from kerasllm.preprocessors.packing import framing_ids, pack_segments, tokenize_text
from kerasllm.preprocessors.preprocessor import Preprocessor, as_strings, as_text_batch, unbatch_if

#: The sub-folder of a layer's assets folder that holds a separate target tokenizer.
TARGET_TOKENIZER_ASSETS = "target_tokenizer"


def target_boundary_ids(tokenizer) -> tuple[int, int]:
    """The start and end ids a target is framed with (`[start] t` in, `t [end]` out).

    Raises:
        ValueError: the target tokenizer lacks a start or an end token.
    """
    if tokenizer.start_id is None or tokenizer.end_id is None:
        raise ValueError("The target tokenizer needs start and end tokens.")
    return tokenizer.start_id, tokenizer.end_id


@keras.saving.register_keras_serializable(package="kerasllm")
class Seq2SeqLMPreprocessor(GenerativePreprocessor):
    """Frames (source, target) texts for a `Seq2SeqLM` (teacher forcing), and sources for
    `Seq2SeqLM.generate`.

    Call it as `preprocessor(sources, targets)` (what `Seq2SeqLM.fit(sources, targets)` does)
    or, as KerasHub does, with `x = {"encoder_text": sources, "decoder_text": targets}`. It
    frames exactly as `kerasllm.data.seq2seq_dataset` does in training: the encoder input is
    the source's tokens, truncated to `encoder_sequence_length`; with the target's tokens `t`
    truncated to `decoder_sequence_length - 1`, the decoder input is `[start] t` and the
    labels `t [end]`. Returns `(x, y, sample_weight)`: `x = {"encoder_token_ids",
    "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask"}` int32, `y` int32
    (B, T), `sample_weight` float32 (B, T), 0 on padding (times `sample_weight` (B,) when one
    is given).

    A source without any token (empty, blank) is one masked-in pad token, as in the exported
    translation signatures (no row is fully masked). `generate_preprocess(sources)` gives the
    encoder inputs for generation; `generate_postprocess(ids)` turns generated target ids into
    text without surrounding whitespace, as the exported signatures do.

    Args:
        tokenizer: the source `kerasllm.tokenizers.Tokenizer` (also the target one when
            `target_tokenizer` is None).
        sequence_length: the default of both lengths below.
        encoder_sequence_length: the longest source (default `sequence_length`).
        decoder_sequence_length: the longest decoder input and label sequence (default
            `sequence_length`), at least 2.
        target_tokenizer: the target side's tokenizer when it differs from the source's; it
            needs start and end tokens. A `.keras` file saves it beside the source one.
        pad_to_sequence_length: pad every batch to the sequence lengths (static shapes).
        source_start_token, source_end_token: frame each source as `[start] tokens [end]`
            with the (source) tokenizer's start / end ids, as a family's Hugging Face
            tokenizer does (T5: end only, BART: both); default neither. The training pipeline
            (`kerasllm.data.seq2seq_dataset`) and the exported signatures take the same
            options.

    Example:
    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_sentencepiece(["a b c d e"] * 30, vocabulary_size=280)
    >>> pre = Seq2SeqLMPreprocessor(tok, sequence_length=8)
    >>> x, y, w = pre(["a b"], ["c d"])
    >>> int(x["decoder_token_ids"][0, 0]) == tok.start_id, int(y[0, -1]) == tok.end_id
    (True, True)
    >>> sorted(pre.generate_preprocess(["a b"]))
    ['encoder_padding_mask', 'encoder_token_ids']
    """

    _STRIP_OUTPUTS = True
    _OUTPUT_KEYS = ("decoder_token_ids", "decoder_padding_mask")

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 128,
        encoder_sequence_length: int | None = None,
        decoder_sequence_length: int | None = None,
        target_tokenizer=None,
        pad_to_sequence_length: bool = False,
        source_start_token: bool = False,
        source_end_token: bool = False,
        **kwargs,
    ):
        encoder = sequence_length if encoder_sequence_length is None else encoder_sequence_length
        super().__init__(tokenizer, encoder, pad_to_sequence_length, **kwargs)
        decoder = sequence_length if decoder_sequence_length is None else decoder_sequence_length
        if not isinstance(decoder, int) or isinstance(decoder, bool) or decoder < 2:
            raise ValueError(
                "`decoder_sequence_length` must be an int >= 2 (the start or end token and at "
                f"least one target token); got {decoder!r}."
            )
        self.decoder_sequence_length = decoder
        self.source_start_token = bool(source_start_token)
        self.source_end_token = bool(source_end_token)
        self.target_tokenizer = target_tokenizer
        if tokenizer is not None or target_tokenizer is not None:
            target_boundary_ids(self.target_tokenizer or tokenizer)
        if tokenizer is not None:
            self.source_framing_ids()  # a clear error now, not at the first batch

    def source_framing_ids(self) -> tuple[int | None, int | None]:
        """The ids a source is framed with (`packing.framing_ids` of the options)."""
        return framing_ids(
            self._require_tokenizer(), self.source_start_token, self.source_end_token
        )

    @property
    def encoder_sequence_length(self) -> int:
        """The longest source in tokens (the base class's `sequence_length`)."""
        return self.sequence_length

    @property
    def target_tokenizer(self):
        """The target side's tokenizer: the one given, else the source one."""
        return self._target_tokenizer if self._target_tokenizer is not None else self._tokenizer

    @target_tokenizer.setter
    def target_tokenizer(self, tokenizer) -> None:
        # The base class's setter checks the type (and stores it as `_tokenizer`): run it,
        # then put the source tokenizer back.
        source = self._tokenizer
        Preprocessor.tokenizer.fset(self, tokenizer)
        self._target_tokenizer, self._tokenizer = self._tokenizer, source

    def _output_tokenizer(self):
        self._require_tokenizer()
        return self.target_tokenizer

    def _encoder_inputs(self, sources: tf.Tensor, sequence_length: int) -> dict:
        first, last = self.source_framing_ids()
        packed = pack_segments(
            [self.tokenize(sources)],
            sequence_length,
            first,
            last,
            pad_to_sequence_length=self.pad_to_sequence_length,
            return_empty=True,
        )
        return {
            "encoder_token_ids": packed["token_ids"],
            "encoder_padding_mask": packed["padding_mask"],
            "is_empty": packed["is_empty"],
        }

    def call(self, x, y=None, sample_weight=None):
        if isinstance(x, dict):
            missing = {"encoder_text", "decoder_text"} - set(x)
            if missing or y is not None:
                raise ValueError(
                    "A dict `x` holds 'encoder_text' and 'decoder_text' (then no `y`); got "
                    f"keys {sorted(x)}{' and a `y`' if y is not None else ''}."
                )
            x, y = x["encoder_text"], x["decoder_text"]
        if y is None:
            raise ValueError(
                "Seq2SeqLMPreprocessor needs target texts: call it with (sources, targets), "
                "e.g. fit(sources, targets); for generation use `generate_preprocess`."
            )
        sources, targets = as_strings(x, "x"), as_strings(y, "y")
        scalar = sources.shape.rank == 0
        if (targets.shape.rank == 0) != scalar:
            raise ValueError("Sources and targets must both be strings or both be batches.")
        if scalar:
            sources, targets = sources[None], targets[None]
        self._require_tokenizer()
        target_tokenizer = self.target_tokenizer
        start, end = target_boundary_ids(target_tokenizer)
        inputs = self._encoder_inputs(sources, self.sequence_length)
        del inputs["is_empty"]
        target_ids = tokenize_text(target_tokenizer, targets)
        # The decoder always holds its start (labels their end) token: no filler needed.
        decoder = pack_segments(
            [target_ids],
            self.decoder_sequence_length,
            first_id=start,
            filler_id=None,
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        labels = pack_segments(
            [target_ids],
            self.decoder_sequence_length,
            last_id=end,
            filler_id=None,
            pad_to_sequence_length=self.pad_to_sequence_length,
        )
        inputs["decoder_token_ids"] = decoder["token_ids"]
        inputs["decoder_padding_mask"] = decoder["padding_mask"]
        weights = tf.cast(labels["padding_mask"], tf.float32)
        if sample_weight is not None:
            weights *= tf.cast(sample_weight, tf.float32)[..., None]
        y = labels["token_ids"]
        return keras.utils.pack_x_y_sample_weight(*unbatch_if(scalar, (inputs, y, weights)))

    def generate_preprocess(self, x: Any, sequence_length: int | None = None) -> dict:
        """Sources to generation inputs: `{"encoder_token_ids", "encoder_padding_mask"}` int32
        (B, L); a source longer than `sequence_length` (default `encoder_sequence_length`)
        tokens keeps its first ones.

        Args:
            x: a string or a batch of strings; a KerasHub-style dict's "encoder_text" too.
            sequence_length: the longest source in tokens.
        """
        out = self.frame_sources(x, sequence_length)
        del out["is_empty"]
        return out

    def frame_sources(self, x: Any, sequence_length: int | None = None) -> dict:
        """`generate_preprocess` plus `"is_empty"`, bool (B,): the sources without any token,
        whose generated text `Seq2SeqLM.generate` (like the exported signatures) blanks."""
        if isinstance(x, dict):
            x = x["encoder_text"]
        sources, scalar = as_text_batch(x, "x")
        self._require_tokenizer()
        length = self.sequence_length if sequence_length is None else sequence_length
        out = self._encoder_inputs(sources, length)
        return unbatch_if(scalar, out)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        # `sequence_length` is the encoder length here; both lengths are saved explicitly.
        config.pop("sequence_length")
        return {
            **config,
            "encoder_sequence_length": self.encoder_sequence_length,
            "decoder_sequence_length": self.decoder_sequence_length,
            "source_start_token": self.source_start_token,
            "source_end_token": self.source_end_token,
        }

    # A separate target tokenizer travels in `.keras` files beside the source one.
    def save_assets(self, dir_path: str) -> None:
        super().save_assets(dir_path)
        if self._target_tokenizer is not None:
            self._target_tokenizer.save(os.path.join(dir_path, TARGET_TOKENIZER_ASSETS))

    def load_assets(self, dir_path: str) -> None:
        from kerasllm import tokenizers

        super().load_assets(dir_path)
        folder = os.path.join(dir_path, TARGET_TOKENIZER_ASSETS)
        if os.path.isdir(folder):
            self.target_tokenizer = tokenizers.load(folder)
