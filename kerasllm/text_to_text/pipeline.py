"""`TextToText`: text in, text out, over a `Seq2SeqLM` bundle (translation, summarization, ...)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from kerasllm import bundle as bundle_lib
from kerasllm.generation import BeamSampler, Sampler, get_sampler
from kerasllm.preprocessors.packing import tokenize_text
from kerasllm.text_to_text.text import clean, split_to_fit
from kerasllm.utils.validation import is_finite_real, is_int

logger = logging.getLogger(__name__)


def _as_texts(texts) -> tuple[list[str], bool]:
    """`texts` as a list of str, and whether it was one text.

    `bytes` are decoded as UTF-8 (undecodable bytes become U+FFFD, as in the command line
    and the served signatures, which take any bytes); anything else that is not text is
    refused here rather than deep inside tokenization.
    """
    if isinstance(texts, (str, bytes)):
        texts, single = [texts], True
    elif isinstance(texts, tf.Tensor) and texts.dtype == tf.string and texts.shape.rank == 1:
        texts, single = texts.numpy().tolist(), False
    elif isinstance(texts, np.ndarray) and texts.ndim == 1:
        texts, single = texts.tolist(), False
    elif isinstance(texts, (Sequence, Iterator)):
        texts, single = list(texts), False
    else:
        raise TypeError(
            f"`texts` must be a str (or UTF-8 bytes) or a list of them; got {type(texts).__name__}."
        )
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise TypeError(
                f"`texts[{i}]` must be a str (or UTF-8 bytes); got {type(text).__name__} "
                f"{text!r:.80}."
            )
        out.append(str(text))
    return out, single


class TextToText:
    """Generates text from text with any `Seq2SeqLM` bundle (see `kerasllm.bundle`): a
    translation, summarization or other sequence-to-sequence model, whatever its languages.

    Never crashes and never hangs on awkward input: empty or whitespace-only text gives an
    empty string; control characters are dropped; input longer than the model's source length
    is split into sentences (then clauses, then words) whose outputs are generated one by one
    and joined; every output is bounded by `max_length` tokens. Arguments of the wrong type or
    out of range raise a `TypeError` / `ValueError` that names them.

    Typographic punctuation (curly quotes and apostrophes, no-break spaces, dashes, `…`) is
    mapped to the ASCII forms of the training text by the source tokenizer when its
    `unify_typography` option is on, as in the shipped `translate_en_fr` bundle (see
    docs/data.md); the exported SavedModel does the same, since it runs the same tokenizer.

    The bundle's tokenizers are `"source"` and `"target"` (one joint tokenizer may serve both:
    without `"target"`, `"source"` does); its metadata's `source_length` and `target_length`
    (default 128) bound the encoder input and the generated output.

    Args:
        bundle: a loaded `Bundle` or the path of a bundle directory.

    Example:
    >>> from kerasllm.text_to_text import TextToText
    >>> model = TextToText("saved_models/translate_en_fr")  # doctest: +SKIP
    >>> model.generate(["In the beginning God created the heavens and the earth."])
    ...                                                          # doctest: +SKIP
    ['Au commencement, Dieu créa les cieux et la terre.']
    """

    def __init__(self, bundle: bundle_lib.Bundle | str | os.PathLike):
        if not isinstance(bundle, bundle_lib.Bundle):
            bundle = bundle_lib.load(bundle)
        if type(bundle.model).__name__ != "Seq2SeqLM":
            raise ValueError(
                f"TextToText needs a Seq2SeqLM bundle; got {type(bundle.model).__name__}."
            )
        self.bundle = bundle
        self.model = bundle.model
        self.source_tokenizer = bundle.tokenizers["source"]
        self.target_tokenizer = bundle.tokenizers.get("target", self.source_tokenizer)
        self.source_length = int(bundle.metadata.get("source_length", 128))
        self.target_length = int(bundle.metadata.get("target_length", 128))

    def _source_ids(self, texts: list[str]) -> list[list[int]]:
        # The preprocessors' tokenization, so sources get the ids they get in training, in
        # `Seq2SeqLM.generate` and in the export (the texts are already valid UTF-8 here).
        batch = tf.constant(texts, tf.string, shape=[len(texts)])
        return tokenize_text(self.source_tokenizer, batch).to_list()

    def generate(
        self,
        texts: list[str] | str | bytes,
        beams: int = 1,
        sampler: str | Sampler = "greedy",
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
        seed: int | None = 0,
    ) -> list[str] | str:
        """Generates the output text of one string or of each of a list of strings.

        Args:
            texts: source text(s): a str, or a list (tuple, 1-D array) of str. `bytes` are
                decoded as UTF-8, undecodable bytes becoming U+FFFD. An empty list gives an
                empty list.
            beams: beam width, an int >= 1; > 1 uses beam search (overrides `sampler`, but
                keeps its `no_repeat_ngram_size`).
            sampler: "greedy", "top_k", "top_p", "random" or a `Sampler`, when `beams == 1`.
            max_length: most target tokens per sentence, a positive int; None (the default)
                and values above the model's target length mean the model's target length.
            batch_size: sentences decoded together (sorted by length to cut padding), >= 1.
            length_penalty: beam search's length normalization exponent, a finite number.
            seed: seed of random samplers, an int (None draws one).

        Returns:
            The outputs, in order (one string for one string).

        Raises:
            TypeError: `texts` (or one of its items) is not text.
            ValueError: another argument is of the wrong type or out of range.
        """
        texts, single = _as_texts(texts)
        if not is_int(beams) or beams < 1:
            raise ValueError(f"`beams` must be an int >= 1; got {beams!r}.")
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1; got {batch_size!r}.")
        if max_length is not None and (not is_int(max_length) or max_length < 1):
            # 0 used to mean "the default" through `max_length or ...`: refuse it instead.
            raise ValueError(
                f"`max_length` must be a positive int or None (the model's target length, "
                f"{self.target_length}); got {max_length!r}."
            )
        max_length = self.target_length if max_length is None else int(max_length)
        max_length = min(max_length, self.target_length)
        if not is_finite_real(length_penalty):
            raise ValueError(f"`length_penalty` must be a finite number; got {length_penalty!r}.")
        if seed is not None and not is_int(seed):
            raise ValueError(f"`seed` must be an int or None; got {seed!r}.")
        sampler = get_sampler(sampler)  # checked even when beams > 1 overrides it
        chosen = (
            BeamSampler(
                num_beams=int(beams),
                length_penalty=float(length_penalty),
                no_repeat_ngram_size=sampler.no_repeat_ngram_size,
            )
            if beams > 1
            else sampler
        )

        # Tokenize everything once; only texts too long for the encoder are split into pieces.
        cleaned = [clean(text) for text in texts]
        nonempty = [i for i, text in enumerate(cleaned) if text]
        pieces, ids, owners = [], [], []
        for index, row in zip(nonempty, self._source_ids([cleaned[i] for i in nonempty])):
            if len(row) <= self.source_length:
                pieces.append(cleaned[index])
                ids.append(row)
                owners.append(index)
                continue
            split = split_to_fit(cleaned[index], self._fits)
            logger.info("Split a %d-token input into %d pieces.", len(row), len(split))
            for piece in split:
                piece_ids = self._source_ids([piece])[0]
                if len(piece_ids) > self.source_length:
                    logger.warning(
                        "A piece of %d tokens was truncated to %d.",
                        len(piece_ids),
                        self.source_length,
                    )
                    piece_ids = piece_ids[: self.source_length]
                pieces.append(piece)
                ids.append(piece_ids)
                owners.append(index)
        outputs = [""] * len(pieces)
        order = np.argsort([len(row) for row in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            batch = [int(i) for i in order[start : start + batch_size]]
            rows = [ids[i] or [self.source_tokenizer.unk_id or 0] for i in batch]
            longest = max(len(r) for r in rows)
            # Outputs rarely exceed twice their source in tokens (French runs ~15% longer than
            # English; a summary is shorter): bound the loop near the source.
            new_tokens = min(max_length, 2 * longest + 10)
            generated = self.model.generate(
                rows,
                max_new_tokens=new_tokens,
                sampler=chosen,
                stop_token_ids=[self.target_tokenizer.end_id],
                seed=seed,
                start_id=self.target_tokenizer.start_id,
            )
            texts_out = self.target_tokenizer.detokenize(
                np.asarray(generated), skip_special_tokens=True
            ).numpy()
            for i, text in zip(batch, texts_out):
                outputs[i] = text.decode("utf-8", errors="replace").strip()

        results = [""] * len(texts)
        joined: dict[int, list[str]] = {}
        for owner, text in zip(owners, outputs):
            joined.setdefault(owner, []).append(text)
        for owner, parts in joined.items():
            results[owner] = " ".join(p for p in parts if p)
        return results[0] if single else results

    def _fits(self, text: str) -> bool:
        return len(self._source_ids([text])[0]) <= self.source_length
