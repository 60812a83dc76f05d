"""`generate`: strings or token ids in, strings or token ids out, through XLA-compiled loops.

Inputs are grouped into shape buckets (batch rounded up to a power of two; prompt, source and
cache lengths to powers of two, capped by learned position tables), and each bucket gets one
`tf.function(jit_compile=True)`, traced once and cached on the model. Lengths,
`max_new_tokens`, `seed` and the stop ids are runtime tensors, so changing them never
retraces; a new sampler setting or bucket does.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm.generation.decoding import decode_causal, decode_seq2seq
from kerasllm.generation.samplers import BeamSampler, Sampler, get_sampler
from kerasllm.preprocessors.packing import tokenize_text
from kerasllm.utils.validation import is_int

# Attribute holding the compiled loops, set with object.__setattr__ so that neither Keras nor
# TensorFlow tracking sees it (it must not enter checkpoints, SavedModels or get_config).
_LOOPS_ATTRIBUTE = "_kerasllm_generation_loops"
MIN_PROMPT_BUCKET = 8
MIN_CACHE_BUCKET = 16
MIN_STOP_SLOTS = 4


class _CompiledLoops:
    """The compiled decoding functions of one model, keyed by shape bucket and settings, and
    the model variables they were traced on."""

    def __init__(self, variables: list, trace_count: int = 0):
        self.functions: dict[tuple, Any] = {}
        self.variables = variables
        self.trace_count = trace_count


def _loops(model) -> _CompiledLoops:
    loops = model.__dict__.get(_LOOPS_ATTRIBUTE)
    # A traced loop holds the variables that existed when it was traced. `model.quantize`
    # replaces variables (float kernels by int8 ones plus scales), and a loop traced before
    # would go on decoding with the float weights: loops are dropped whenever the model's
    # variables are no longer the very objects they were traced on.
    variables = list(model.weights)
    if (
        loops is None
        or len(loops.variables) != len(variables)
        or any(a is not b for a, b in zip(loops.variables, variables))
    ):
        loops = _CompiledLoops(variables, loops.trace_count if loops is not None else 0)
        object.__setattr__(model, _LOOPS_ATTRIBUTE, loops)
    return loops


def trace_count(model) -> int:
    """How many times decoding loops have been traced (compiled) for `model` so far.

    Calls that fall in an already-compiled bucket do not trace again.

    Example:
    >>> from kerasllm.models import CausalLM, Decoder
    >>> model = CausalLM(Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                          intermediate_dim=16, max_sequence_length=32))
    >>> _ = generate(model, [[5, 6, 7]], max_new_tokens=3)
    >>> _ = generate(model, [[9, 8]], max_new_tokens=5)  # same bucket
    >>> trace_count(model)
    1
    """
    return _loops(model).trace_count


def _bucket(n: int, minimum: int, cap: int | None = None) -> int:
    size = max(minimum, 1 << max(n - 1, 0).bit_length())
    return size if cap is None else max(min(size, cap), n)


# ------------------------------------------------------------------------ input handling
@dataclasses.dataclass
class _Prompts:
    """Normalized inputs: a list of 1-D int32 arrays, and how to format the outputs."""

    rows: list[np.ndarray]
    is_text: bool
    is_single: bool


def _is_text(inputs) -> bool:
    """Whether `generate` inputs are text: a string, a list of strings, or a string array."""
    if isinstance(inputs, (str, bytes)) or _is_string_array(inputs):
        return True
    return (
        isinstance(inputs, (list, tuple))
        and bool(inputs)
        and all(isinstance(x, (str, bytes)) for x in inputs)
    )


def _is_string_array(x) -> bool:
    if isinstance(x, tf.Tensor):
        return x.dtype == tf.string
    if isinstance(x, np.ndarray):
        return x.dtype.kind in ("U", "S") or (
            x.dtype == object and x.size > 0 and isinstance(x.flat[0], (str, bytes))
        )
    return False


def _int_rows(array: np.ndarray, what: str) -> list[np.ndarray]:
    if array.dtype.kind not in ("i", "u"):
        raise ValueError(f"{what} must hold integer token ids; got dtype {array.dtype}.")
    return [np.asarray(row, np.int32) for row in array]


def _from_padded(token_ids, padding_mask) -> list[np.ndarray]:
    ids = np.asarray(token_ids)
    mask = np.asarray(padding_mask).astype(bool)
    if ids.ndim != 2 or mask.shape != ids.shape:
        raise ValueError(
            "`token_ids` and `padding_mask` must both have shape (batch, length); got "
            f"{ids.shape} and {mask.shape}."
        )
    lengths = mask.sum(axis=1)
    if not (mask == (np.arange(ids.shape[1])[None, :] < lengths[:, None])).all():
        raise ValueError("`padding_mask` must be right-padding: each row's ones first, then zeros.")
    return [row[:n] for row, n in zip(_int_rows(ids, "`token_ids`"), lengths)]


def _normalize_inputs(inputs, tokenizer) -> _Prompts:
    """Turns every accepted input form into a list of 1-D int32 arrays."""
    if isinstance(inputs, dict):
        missing = {"token_ids", "padding_mask"} - set(inputs)
        if missing:
            raise ValueError(
                f"A dict input needs 'token_ids' and 'padding_mask'; missing {sorted(missing)}."
            )
        rows = _from_padded(inputs["token_ids"], inputs["padding_mask"])
        return _Prompts(rows, False, False)
    if isinstance(inputs, (str, bytes)) or _is_string_array(inputs):
        if tokenizer is None:
            raise ValueError(
                "String inputs need a tokenizer: set `model.tokenizer` (a "
                "`kerasllm.tokenizers` tokenizer), or pass token ids."
            )
        strings = tf.convert_to_tensor(inputs, tf.string)
        if strings.shape.rank not in (0, 1):
            raise ValueError(f"Pass a string or a 1-D batch of strings; got shape {strings.shape}.")
        is_single = strings.shape.rank == 0
        # The preprocessors' tokenization (invalid UTF-8 as U+FFFD), so that a prompt gives
        # the ids it gives in training, in a preprocessor and in the exported signatures.
        ragged = tokenize_text(tokenizer, tf.reshape(strings, [-1]))
        rows = [np.asarray(r, np.int32) for r in ragged.to_list()]
        return _Prompts(rows, True, is_single)
    if isinstance(inputs, tf.RaggedTensor):
        if inputs.shape.rank != 2:
            raise ValueError(f"A ragged input must be (batch, None); got {inputs.shape}.")
        rows = [np.asarray(r) for r in inputs.to_list()]
        return _Prompts([_int_rows(r[None], "Token ids")[0] for r in rows], False, False)
    if isinstance(inputs, (tf.Tensor, np.ndarray)):
        array = np.asarray(inputs)
        if array.ndim == 1:
            return _Prompts(_int_rows(array[None], "Token ids"), False, True)
        if array.ndim == 2:
            return _Prompts(_int_rows(array, "Token ids"), False, False)
        raise ValueError(f"Token ids must be 1-D or 2-D; got shape {array.shape}.")
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError("`inputs` is empty; pass at least one prompt.")
        if all(isinstance(x, (str, bytes)) for x in inputs):
            return _normalize_inputs(np.asarray(inputs, dtype=object), tokenizer)
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in inputs):
            return _Prompts([np.asarray(inputs, np.int32)], False, True)
        rows = []
        for row in inputs:
            array = np.asarray(row)
            if array.ndim != 1:
                raise ValueError(
                    "A list input must hold strings, ints (one prompt) or 1-D sequences of "
                    f"ints (a batch); got an element {row!r}."
                )
            if array.size == 0:
                array = array.astype(np.int32)
            rows.append(_int_rows(array[None], "Token ids")[0])
        return _Prompts(rows, False, False)
    raise ValueError(
        f"Unsupported input type {type(inputs).__name__}: pass a string or list of strings "
        "(with `model.tokenizer` set), token ids (a list of ints, a list of lists, a 1-D or "
        "2-D array, a tf.RaggedTensor), or a dict with 'token_ids' and 'padding_mask'."
    )


def _check_ids(rows: list[np.ndarray], vocabulary_size: int, what: str) -> None:
    for i, row in enumerate(rows):
        if row.size == 0:
            raise ValueError(f"{what} {i} is empty; every {what.lower()} needs >= 1 token.")
        if row.min() < 0 or row.max() >= vocabulary_size:
            raise ValueError(
                f"{what} {i} has token ids outside [0, {vocabulary_size}): "
                f"min {row.min()}, max {row.max()}."
            )


def _token_id(value, name: str, vocabulary_size: int, origin: str = "") -> int:
    """Checks a token id argument before any op indexes an embedding or a vocabulary with it.

    Out-of-range ids do not fail in the XLA-compiled loop (XLA clamps gather indices), so a
    bad start id would silently generate from another token.
    """
    if not is_int(value):
        raise ValueError(
            f"`{name}`{origin} must be an integer token id in [0, {vocabulary_size}); "
            f"got {value!r}."
        )
    if not 0 <= int(value) < vocabulary_size:
        raise ValueError(
            f"`{name}`{origin} must be a token id in [0, {vocabulary_size}) (the model's "
            f"vocabulary_size); got {int(value)}."
        )
    return int(value)


def _stop_ids(stop_token_ids, tokenizer, vocabulary_size) -> tuple[int, ...]:
    if isinstance(stop_token_ids, str):
        if stop_token_ids != "auto":
            raise ValueError(
                f"`stop_token_ids` must be 'auto', None or a sequence of ints; got "
                f"{stop_token_ids!r}."
            )
        end_id = getattr(tokenizer, "end_id", None) if tokenizer is not None else None
        if end_id is None:
            return ()
        return (_token_id(end_id, "stop_token_ids", vocabulary_size, " (the tokenizer's end id)"),)
    if stop_token_ids is None:
        return ()
    if is_int(stop_token_ids):
        stop_token_ids = (stop_token_ids,)
    if isinstance(stop_token_ids, tf.Tensor):
        stop_token_ids = stop_token_ids.numpy()
    if isinstance(stop_token_ids, np.ndarray):
        stop_token_ids = stop_token_ids.reshape([-1]).tolist()
    if not isinstance(stop_token_ids, Sequence) or not all(is_int(i) for i in stop_token_ids):
        raise ValueError(
            "`stop_token_ids` must be 'auto', None, an int or a sequence of ints; got "
            f"{stop_token_ids!r}."
        )
    ids = tuple(int(i) for i in stop_token_ids)
    bad = [i for i in ids if not 0 <= i < vocabulary_size]
    if bad:
        raise ValueError(f"`stop_token_ids` {bad} are outside [0, {vocabulary_size}).")
    return tuple(sorted(set(ids)))


def _position_limit(backbone) -> int | None:
    """Longest sequence the backbone can place; None when positions are unbounded."""
    return backbone.max_sequence_length if backbone.position_embedding == "learned" else None


def _pad_rows(rows: list[np.ndarray], batch: int, length: int, pad_id: int):
    """(batch, length) ids, lengths and an `active` flag; extra rows repeat the first row."""
    ids = np.full((batch, length), pad_id, np.int32)
    lengths = np.zeros((batch,), np.int32)
    active = np.zeros((batch,), bool)
    for i in range(batch):
        row = rows[i] if i < len(rows) else rows[0]
        ids[i, : row.size] = row
        lengths[i] = row.size
        active[i] = i < len(rows)
    return ids, lengths, active


# ------------------------------------------------------------------------ compiled loops
def _decode_bucket(
    token_ids,
    lengths_or_mask,
    active,
    max_new_tokens,
    seed,
    stop_token_ids,
    *,
    model,
    loops,
    sampler,
    pad_id,
    start_id,
    cache_length,
):
    """Body of one bucket's compiled function (see `_compiled_loop`)."""
    loops.trace_count += 1
    settings = dict(
        cache_length=cache_length,
        max_new_tokens=max_new_tokens,
        sampler=sampler,
        stop_token_ids=stop_token_ids,
        pad_id=pad_id,
        seed=seed,
        active=active,
    )
    if start_id is not None:
        return decode_seq2seq(model, token_ids, lengths_or_mask, start_id=start_id, **settings)
    return decode_causal(model, token_ids, lengths_or_mask, **settings)


def _compiled_loop(model, sampler, pad_id, start_id, batch, input_length, cache_length, stops):
    """The XLA-compiled decoding function of one bucket, created and traced once per model.

    Runtime tensors (no retracing): inputs, lengths (or the source mask for seq2seq),
    `active` rows, `max_new_tokens`, `seed`, and the stop ids (a -1-padded vector of `stops`
    slots).
    """
    seq2seq = start_id is not None
    if isinstance(sampler, BeamSampler):
        # Always keep every beam in the graph; `generate` picks the best on the host.
        sampler = BeamSampler(
            sampler.num_beams,
            sampler.length_penalty,
            return_all_beams=True,
            no_repeat_ngram_size=sampler.no_repeat_ngram_size,
        )
    key = (seq2seq, sampler.cache_key, pad_id, start_id, batch, input_length, cache_length, stops)
    loops = _loops(model)
    if key not in loops.functions:
        # A `partial` per bucket: tf.function's retracing warning counts traces per Python
        # function, and one trace per bucket is the design here, not a retracing problem.
        body = functools.partial(
            _decode_bucket,
            model=model,
            loops=loops,
            sampler=sampler,
            pad_id=pad_id,
            start_id=start_id,
            cache_length=cache_length,
        )
        loops.functions[key] = tf.function(
            body,
            jit_compile=True,
            input_signature=[
                tf.TensorSpec([batch, input_length], tf.int32),  # prompts or sources
                tf.TensorSpec([batch, input_length] if seq2seq else [batch], tf.int32),
                tf.TensorSpec([batch], tf.bool),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([stops], tf.int32),
            ],
        )
    return loops.functions[key]


# ------------------------------------------------------------------------------ outputs
def _format(outputs, prompts, count, first_column, stop_ids, pad_id, tokenizer, sampler):
    """Trims rows to their ends and returns numpy ids or strings, shaped like the inputs."""
    token_ids = outputs["token_ids"].numpy()[:count]
    ends = outputs["lengths"].numpy()[:count]
    scores = outputs["scores"].numpy()[:count] if "scores" in outputs else None
    if isinstance(sampler, BeamSampler) and not sampler.return_all_beams:
        token_ids, ends, scores = token_ids[:, :1], ends[:, :1], scores[:, :1]
    beams = isinstance(sampler, BeamSampler) and sampler.return_all_beams
    if token_ids.ndim == 2:
        token_ids, ends = token_ids[:, None], ends[:, None]
    starts = np.broadcast_to(np.asarray(first_column)[:count, None], ends.shape)
    sequences = [
        [token_ids[i, k, starts[i, k] : ends[i, k]] for k in range(ends.shape[1])]
        for i in range(count)
    ]
    if prompts.is_text:
        # Special tokens (mask, start, unknown...) are not text; the served signatures drop
        # them too. `special_token_ids`: a {role: id} dict here, a list in KerasHub.
        special = getattr(tokenizer, "special_token_ids", None) or ()
        special = special.values() if isinstance(special, dict) else special
        drop = np.asarray(sorted({*stop_ids, pad_id, *(int(i) for i in special)}), np.int32)
        flat = [s[~np.isin(s, drop)].tolist() for row in sequences for s in row]
        texts = tokenizer.detokenize(tf.ragged.constant(flat, dtype=tf.int32, ragged_rank=1))
        # Byte-level vocabularies can end a sequence inside a multi-byte character.
        texts = [t.decode("utf-8", errors="replace") for t in np.reshape(texts.numpy(), [-1])]
        result = [texts[i * ends.shape[1] : (i + 1) * ends.shape[1]] for i in range(count)]
    else:
        width = max(int((ends - starts).max()), 0)
        result = np.full((count, ends.shape[1], width), pad_id, np.int32)
        for i in range(count):
            for k, s in enumerate(sequences[i]):
                result[i, k, : s.size] = s
    if not beams:
        result = [r[0] for r in result] if prompts.is_text else result[:, 0]
    if prompts.is_single:
        result = result[0]
        scores = scores[0] if scores is not None else None
    return (result, scores) if beams else result


# ------------------------------------------------------------------------------ the API
def generate(
    model,
    inputs,
    max_new_tokens: int = 32,
    sampler: str | Sampler = "greedy",
    stop_token_ids: str | int | Sequence[int] | None = "auto",
    seed: int | None = None,
    strip_prompt: bool = False,
    start_id: int | None = None,
):
    """Generates text or token ids with a `CausalLM` or `Seq2SeqLM`.

    Args:
        model: a `kerasllm.models.CausalLM` (continues prompts) or `Seq2SeqLM` (generates a
            target for each source). Its `preprocessor` or, without one, its optional
            `tokenizer` attribute enables string inputs.
        inputs: a string or list of strings; or token ids: a list
            of ints (one prompt), a list of lists / `tf.RaggedTensor` (prompts of any
            lengths), a 1-D or 2-D array (every position a real token), or a dict with
            right-padded `token_ids` and `padding_mask`.
        max_new_tokens: tokens to generate per row at most.
        sampler: "greedy", "random", "top_k", "top_p", "beam" or a `Sampler` instance
            (e.g. `TopPSampler(p=0.9, temperature=0.8)`, `BeamSampler(num_beams=4)`).
        stop_token_ids: a row stops after producing one of these. "auto": the tokenizer's
            end id when the model has a tokenizer, else none. None: never stop early.
        seed: seed of random samplers; the same seed gives the same output. None draws one.
        strip_prompt: (`CausalLM` only) return only the generated continuation.
        start_id: (`Seq2SeqLM` only) the decoder's first token, in [0, vocabulary_size);
            defaults to the tokenizer's start id.

    Raises:
        ValueError: naming the argument and what it allows, for any argument out of its
            range or of the wrong type: token ids (prompts, sources, `start_id`,
            `stop_token_ids`, the tokenizer's pad, start and end ids) outside
            [0, vocabulary_size), `max_new_tokens` < 1, a non-int `seed`, a non-bool
            `strip_prompt`, an unknown sampler. Checked before anything is compiled or run.

    Text goes through one path whatever the entry point: with a `preprocessor`, exactly as
    `model.generate(text)` (the preprocessor's `generate_preprocess` / `generate_postprocess`,
    the framing and detokenization of the exported signatures: over-long prompts keep their
    last tokens, sources their first); without one, `model.tokenizer` tokenizes through
    `kerasllm.preprocessors.tokenize_text` (invalid UTF-8 as U+FFFD, as in training and
    serving) and an over-long prompt is an error (there is no `sequence_length` to cut to).

    Returns:
        For string inputs, strings (a list, or one string for one prompt), without stop,
        pad or other special tokens. For id inputs, a numpy int32 array (B, T) (or (T,) for
        one prompt): for `CausalLM` the prompt and its continuation, for `Seq2SeqLM` the
        target without the start token; the stop token is kept and `pad_id` fills the rest. With
        `BeamSampler(return_all_beams=True)`: `(outputs, scores)`, beams on a new axis after
        the batch (best first), scores of shape (B, num_beams).

    Example:
    >>> from kerasllm.models import CausalLM, Decoder
    >>> model = CausalLM(Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                          intermediate_dim=16, max_sequence_length=32))
    >>> out = generate(model, [[5, 6, 7], [8, 9]], max_new_tokens=4)
    >>> out.shape
    (2, 7)
    >>> (out[1, 6] == 0).item()  # the shorter row is padded
    True
    """
    from kerasllm.models import CausalLM, Seq2SeqLM

    if not isinstance(model, (CausalLM, Seq2SeqLM)):
        raise ValueError(f"`generate` needs a CausalLM or a Seq2SeqLM; got {type(model).__name__}.")
    if not is_int(max_new_tokens) or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be a positive integer; got {max_new_tokens!r}.")
    max_new_tokens = int(max_new_tokens)
    sampler = get_sampler(sampler)
    if seed is None:
        seed = secrets.randbelow(2**31 - 1)
    elif not is_int(seed):
        raise ValueError(f"`seed` must be an int or None; got {seed!r}.")
    seed = int(seed) % (2**31 - 1)
    if not isinstance(strip_prompt, (bool, np.bool_)):
        raise ValueError(f"`strip_prompt` must be True or False; got {strip_prompt!r}.")
    if isinstance(model, CausalLM) and start_id is not None:
        raise ValueError("`start_id` applies to Seq2SeqLM only; a CausalLM continues its prompts.")
    if isinstance(model, Seq2SeqLM) and strip_prompt:
        raise ValueError("`strip_prompt` applies to CausalLM only; Seq2SeqLM returns targets.")
    if getattr(model, "preprocessor", None) is not None and _is_text(inputs):
        # One text path: a model with a preprocessor frames text with it (its
        # `generate_preprocess`: U+FFFD for invalid UTF-8, over-long prompts cut as the
        # exported signatures cut them) and detokenizes with its `generate_postprocess`.
        # `model.generate` does exactly that, then calls back here with token ids.
        causal = isinstance(model, CausalLM)
        own = {"strip_prompt": strip_prompt} if causal else {"start_id": start_id}
        return model.generate(
            inputs,
            max_new_tokens=max_new_tokens,
            sampler=sampler,
            stop_token_ids=stop_token_ids,
            seed=seed,
            **own,
        )
    tokenizer = getattr(model, "tokenizer", None)
    backbone = model.backbone
    vocabulary_size = backbone.vocabulary_size
    # Pads fill unused rows and positions of the compiled loop's inputs; ids outside the
    # vocabulary there would reach the embedding lookup.
    pad_id = _token_id(
        getattr(tokenizer, "pad_id", None) or 0, "pad_id", vocabulary_size, " (the tokenizer's)"
    )
    stop_ids = _stop_ids(stop_token_ids, tokenizer, vocabulary_size)
    # A fixed-size (bucketed) vector, -1 in unused slots: new stop ids do not retrace.
    stops = np.full([_bucket(len(stop_ids), MIN_STOP_SLOTS)], -1, np.int32)
    stops[: len(stop_ids)] = stop_ids
    if isinstance(sampler, BeamSampler) and sampler.num_beams > vocabulary_size:
        raise ValueError(
            f"`num_beams` ({sampler.num_beams}) exceeds the vocabulary size ({vocabulary_size})."
        )
    prompts = _normalize_inputs(inputs, tokenizer)
    limit = _position_limit(backbone)
    count = len(prompts.rows)
    batch = _bucket(count, 1)

    if isinstance(model, CausalLM):
        _check_ids(prompts.rows, vocabulary_size, "Prompt")
        longest = max(r.size for r in prompts.rows)
        if limit is not None and longest + max_new_tokens > limit:
            raise ValueError(
                f"The longest prompt ({longest} tokens) plus max_new_tokens ({max_new_tokens}) "
                f"exceeds this model's max_sequence_length={limit}; shorten the prompts or "
                "lower max_new_tokens."
            )
        prompt_length = _bucket(longest, MIN_PROMPT_BUCKET, limit)
        cache_length = _bucket(
            max(longest + max_new_tokens, prompt_length), MIN_CACHE_BUCKET, limit
        )
        ids, lengths, active = _pad_rows(prompts.rows, batch, prompt_length, pad_id)
        run = _compiled_loop(
            model, sampler, pad_id, None, batch, prompt_length, cache_length, stops.size
        )
        outputs = run(ids, lengths, active, max_new_tokens, seed, stops)
        first_column = lengths if strip_prompt else np.zeros_like(lengths)
    else:
        origin = ""
        if start_id is None:
            start_id = getattr(tokenizer, "start_id", None) if tokenizer is not None else None
            origin = " (the tokenizer's start id)"
            if start_id is None:
                raise ValueError(
                    "Seq2SeqLM generation starts from a start token: pass `start_id`, or set "
                    "`model.tokenizer` to a tokenizer that has one."
                )
        start_id = _token_id(start_id, "start_id", vocabulary_size, origin)
        _check_ids(prompts.rows, vocabulary_size, "Source")
        longest = max(r.size for r in prompts.rows)
        if limit is not None and (longest > limit or 1 + max_new_tokens > limit):
            raise ValueError(
                f"Sources must have at most {limit} tokens and max_new_tokens must be at most "
                f"{limit - 1} (max_sequence_length={limit}); got a {longest}-token source and "
                f"max_new_tokens={max_new_tokens}."
            )
        source_length = _bucket(longest, MIN_PROMPT_BUCKET, limit)
        cache_length = _bucket(1 + max_new_tokens, MIN_CACHE_BUCKET, limit)
        ids, lengths, active = _pad_rows(prompts.rows, batch, source_length, pad_id)
        source_mask = (np.arange(source_length)[None, :] < lengths[:, None]).astype(np.int32)
        run = _compiled_loop(
            model, sampler, pad_id, start_id, batch, source_length, cache_length, stops.size
        )
        outputs = run(ids, source_mask, active, max_new_tokens, seed, stops)
        first_column = np.ones_like(lengths)
    return _format(outputs, prompts, count, first_column, stop_ids, pad_id, tokenizer, sampler)
