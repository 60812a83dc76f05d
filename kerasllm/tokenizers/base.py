"""The `Tokenizer` base class shared by every tokenizer kind."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kerasllm import _compat
from kerasllm.tokenizers.typography import unify_typography
from kerasllm.utils.files import read_json, resolve_inside, write_json

#: The special-token roles every tokenizer may expose, in their canonical order.
SPECIAL_ROLES = ("pad", "unk", "start", "end", "mask", "cls", "sep")
CONFIG_FILENAME = "tokenizer.json"
#: T5's sentinel tokens (`<extra_id_0>`, `<extra_id_1>`, ...): the span corruption objective
#: (`kerasllm.data.span_corruption_dataset`) replaces dropped spans by them, in order.
SENTINEL_FORMAT = "<extra_id_{}>"


def sentinel_tokens(count: int) -> list[str]:
    """The first `count` sentinel token strings, to reserve in a tokenizer (e.g.
    `train_sentencepiece(..., extra_tokens=sentinel_tokens(100))`).

    Example:
    >>> sentinel_tokens(2)
    ['<extra_id_0>', '<extra_id_1>']
    """
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"`count` must be an int >= 0. Received: {count!r}")
    return [SENTINEL_FORMAT.format(i) for i in range(count)]


def sentinel_ids(tokenizer: Any) -> list[int]:
    """The ids of the sentinel tokens a tokenizer reserves (`<extra_id_0>` first), stopping at
    the first one missing; `[]` when it has none."""
    ids: list[int] = []
    while True:
        try:
            ids.append(int(tokenizer.token_to_id(SENTINEL_FORMAT.format(len(ids)))))
        except ValueError:
            return ids


FORMAT_VERSION = 1

_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_kind(kind: str):
    """Class decorator registering a tokenizer class under `kind` for `load()`."""

    def decorator(cls):
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorator


def validate_special_tokens(special_tokens: dict[str, str]) -> dict[str, str]:
    """Checks a `{role: token}` mapping and returns it in canonical role order."""
    if not isinstance(special_tokens, dict):
        raise ValueError(
            f"`special_tokens` must be a dict mapping roles to token strings. "
            f"Received: {special_tokens!r}"
        )
    unknown = set(special_tokens) - set(SPECIAL_ROLES)
    if unknown:
        raise ValueError(
            f"Unknown special-token roles {sorted(unknown)}. Allowed roles: {SPECIAL_ROLES}."
        )
    if "pad" not in special_tokens:
        raise ValueError("`special_tokens` must define a 'pad' token (it gets id 0).")
    for role, token in special_tokens.items():
        if not isinstance(token, str) or not token or token != token.strip():
            raise ValueError(
                f"Special token for role '{role}' must be a non-empty string without "
                f"surrounding whitespace. Received: {token!r}"
            )
    return {role: special_tokens[role] for role in SPECIAL_ROLES if role in special_tokens}


def unique_tokens(special_tokens: dict[str, str]) -> list[str]:
    """Distinct special-token strings, in role order (pad first)."""
    out: list[str] = []
    for token in special_tokens.values():
        if token not in out:
            out.append(token)
    return out


def check_token_ids(
    ids: tf.Tensor | tf.RaggedTensor, vocabulary_size: int, name: str = "ids"
) -> tf.Tensor | tf.RaggedTensor:
    """Refuses token ids outside `[0, vocabulary_size)`; returns `ids` unchanged.

    The one range check every tokenizer's `detokenize` runs before its lookup op: those ops
    read their tables without bounds checks (tensorflow-text's FastWordpiece detokenizer
    reads out of bounds and can kill the process), raise an opaque `OutOfRangeError`
    (SentencePiece) or drop the id silently (byte BPE's hash table). It works in both modes:

    - eagerly it raises a `ValueError` naming `name` and listing the offending ids;
    - in a graph (`tf.function`, `tf.data`, an exported SavedModel) it attaches a
      `tf.debugging.Assert`, so the call fails with an `InvalidArgumentError` carrying the
      same message instead of reaching the op.

    Args:
        ids: an integer `tf.Tensor` or `tf.RaggedTensor`.
        vocabulary_size: the number of ids of the vocabulary.
        name: the argument name for the message.

    Returns:
        `ids` (in a graph: with the assertion as a control dependency of its values).

    Raises:
        TypeError: `ids` is not of an integer dtype.
        ValueError: eagerly, when an id is out of range.

    Example:

    >>> import tensorflow as tf
    >>> check_token_ids(tf.constant([0, 5]), 6).numpy().tolist()
    [0, 5]
    >>> check_token_ids(tf.constant([3, -1, 6]), 6)
    Traceback (most recent call last):
    ...
    ValueError: `ids` holds token ids outside the vocabulary [0, 6): [-1, 6].
    """
    ragged = isinstance(ids, tf.RaggedTensor)
    values = ids.flat_values if ragged else ids
    if not values.dtype.is_integer:
        raise TypeError(f"`{name}` must hold integer token ids; got dtype {values.dtype.name}.")
    # No quote characters: a graph assertion prints its message with quotes escaped.
    message = f"`{name}` holds token ids outside the vocabulary [0, {vocabulary_size}):"
    if tf.executing_eagerly() and hasattr(values, "numpy"):
        array = np.asarray(values.numpy()).astype(np.int64, copy=False).reshape(-1)
        bad = array[(array < 0) | (array >= vocabulary_size)]
        if bad.size:
            shown = bad[:8].tolist()
            more = f" (and {bad.size - 8} more)" if bad.size > 8 else ""
            raise ValueError(f"{message} {shown}{more}.")
        return ids
    # Compare in int64 so that no id wraps around (an int64 2**32 is not id 0).
    wide = tf.cast(values, tf.int64)
    outside = (wide < 0) | (wide >= vocabulary_size)
    assertion = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(outside)),
        [message, tf.boolean_mask(wide, outside)],
        summarize=8,
        name="check_token_ids",
    )
    with tf.control_dependencies([assertion]):
        values = tf.identity(values)
    return ids.with_flat_values(values) if ragged else values


def read_lines(path: str | os.PathLike, what: str) -> list[str]:
    """The lines of a UTF-8 text file without their line ends; a file that is not UTF-8
    raises a `ValueError` naming it (a vocabulary or merges file of a tokenizer)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {os.fspath(path)} is not UTF-8 text: {error}") from None


def tokenizer_vocabulary_size(tokenizer: Any) -> int:
    """The number of ids a tokenizer produces and accepts.

    Reads `vocabulary_size` (an int property, as on kerasllm tokenizers, or a method, as on
    keras_hub tokenizers), else the length of `get_vocabulary()` or of `vocabulary`.

    Raises:
        TypeError: the tokenizer exposes none of these.
    """
    size = getattr(tokenizer, "vocabulary_size", None)
    if callable(size):
        size = size()
    if size is None and callable(getattr(tokenizer, "get_vocabulary", None)):
        size = len(tokenizer.get_vocabulary())
    if size is None and hasattr(getattr(tokenizer, "vocabulary", None), "__len__"):
        size = len(tokenizer.vocabulary)
    if size is None or isinstance(size, bool):
        raise TypeError(
            f"Cannot tell the vocabulary size of the tokenizer {type(tokenizer).__name__}: it "
            "needs a `vocabulary_size` (or `get_vocabulary()`) to be paired with a model."
        )
    return int(size)


def model_vocabulary_size(model: Any) -> int | None:
    """The vocabulary size of a kerasllm model or backbone (None when it has none).

    Task models carry it on their `backbone`; backbones (`Encoder`, `Decoder`,
    `EncoderDecoder`) on themselves. An int is returned as is.
    """
    if isinstance(model, int) and not isinstance(model, bool):
        return model
    for owner in (model, getattr(model, "backbone", None)):
        size = getattr(owner, "vocabulary_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return None


def check_vocabulary_match(model: Any, tokenizers: Any, what: str = "model and tokenizer") -> None:
    """Refuses to pair a model with a tokenizer of another vocabulary size.

    A model whose vocabulary is larger than its tokenizer's generates ids the tokenizer cannot
    detokenize (in exported graphs the lookup op used to read out of bounds); a smaller one
    cannot embed every id the tokenizer produces. kerasllm trains and converts models with
    exactly their tokenizer's vocabulary size (the shipped presets and bundles all agree), so
    equality is required; pad a tokenizer or resize the model's embedding rather than relying
    on unused rows.

    Args:
        model: a kerasllm task model or backbone, or a vocabulary size. A model without a
            known vocabulary size is not checked.
        tokenizers: one tokenizer, or a `{role: tokenizer}` dict (each is checked).
        what: where the pair is put together, for the message (e.g. "Bundle.save").

    Raises:
        ValueError: a tokenizer's vocabulary size differs from the model's; the message
            gives both sizes.
        TypeError: a tokenizer exposes no vocabulary size.
    """
    expected = model_vocabulary_size(model)
    if expected is None or tokenizers is None:
        return
    items = tokenizers.items() if isinstance(tokenizers, dict) else [("tokenizer", tokenizers)]
    for role, tokenizer in items:
        size = tokenizer_vocabulary_size(tokenizer)
        if size != expected:
            label = "tokenizer" if role == "tokenizer" else f"{role!r} tokenizer"
            raise ValueError(
                f"{what}: the model's vocabulary has {expected:,} ids but the {label} "
                f"({type(tokenizer).__name__}) has {size:,}. A model must be paired with the "
                "tokenizer it was trained with: pass that tokenizer, or build the model with "
                f"vocabulary_size={size}."
            )


class Tokenizer(tf.Module):
    """Base class of kerasllm tokenizers: a `tf.Module` made of pure TensorFlow ops.

    Subclasses implement `_tokenize_impl` (1-D string tensor -> `tf.RaggedTensor` of int32
    ids), `_detokenize_impl` (ragged int32 ids -> 1-D string tensor), `_normalize_impl`
    (the text normalization that a tokenize/detokenize round trip applies),
    `get_vocabulary()`, `_save_files()` and `_from_files()`.

    Conventions (see `docs/architecture.md`): the pad id is always 0; `tokenize` and
    `detokenize` contain no `py_function`, so a tokenizer runs eagerly, inside
    `tf.function`, inside `tf.data.Dataset.map` and inside an exported SavedModel.

    Special tokens are exposed by role: `pad_id`, `unk_id`, `start_id`, `end_id`, `mask_id`,
    `cls_id` and `sep_id` (None where the kind has no such token), and
    `special_token_ids` maps each defined role to its id. Special-token strings that appear
    in the input text are never split: they map to their single id.

    Example:

    >>> import kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["the cat sat", "the dog ran"] * 20, vocabulary_size=60)
    >>> ids = tok.tokenize(["the cat", "the dog [MASK]"])
    >>> [s.decode() for s in tok.detokenize(ids).numpy()]
    ['the cat', 'the dog [MASK]']
    >>> tok.pad_id, tok.mask_id
    (0, 2)
    """

    kind: str = "base"
    #: Roles that fall back on another role when the kind defines no token for them.
    _ROLE_FALLBACK: dict[str, str] = {}

    def __init__(self, special_tokens: dict[str, str], name: str | None = None):
        super().__init__(name=name)
        # A tuple of string pairs: tf.Module's tracking leaves it as it is.
        self._special_tokens = tuple(validate_special_tokens(special_tokens).items())
        # Off unless asked for: tokenizers saved before the option existed, and vocabularies
        # imported from other libraries, must keep producing the ids they always did.
        self._unify_typography = False
        self._tokenize_fn = tf.function(
            self._tokenize_impl,
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )
        # The range check is traced into the function too, so a SavedModel that keeps this
        # function (and calls it without `detokenize`) cannot reach the lookup op either.
        self._detokenize_fn = tf.function(
            self._checked_detokenize,
            input_signature=[tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)],
            autograph=False,
        )
        self._normalize_fn = tf.function(
            self._normalize_impl,
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )

    def _post_init(self) -> None:
        """Checks the vocabulary once it is set (called by subclasses)."""
        vocab = self.get_vocabulary()
        self._token_index = _compat.untracked({token: i for i, token in enumerate(vocab)})
        for role, token in self._special_tokens:
            if token not in self._token_index:
                raise ValueError(
                    f"Special token {token!r} (role '{role}') is not in the vocabulary."
                )
        if self._token_index[self.special_tokens["pad"]] != 0:
            raise ValueError(
                f"The pad token {self.special_tokens['pad']!r} must have id 0, "
                f"found id {self._token_index[self.special_tokens['pad']]}."
            )

    # ------------------------------------------------------------------ subclass hooks
    def _tokenize_impl(self, strings: tf.Tensor) -> tf.RaggedTensor:
        raise NotImplementedError

    def _detokenize_impl(self, ids: tf.RaggedTensor) -> tf.Tensor:
        raise NotImplementedError

    def _normalize_impl(self, strings: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _checked_detokenize(self, ids: tf.RaggedTensor) -> tf.Tensor:
        return self._detokenize_impl(check_token_ids(ids, self.vocabulary_size))

    def get_vocabulary(self) -> list[str]:
        """Returns the vocabulary as a list of token strings, indexed by id."""
        raise NotImplementedError

    def _save_files(self, directory: str) -> dict[str, str]:
        raise NotImplementedError

    @classmethod
    def _from_files(cls, directory: str, config: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        return {}

    def _word_start_flags(self) -> np.ndarray:
        """Bool array over the vocabulary: True where a token starts a new word."""
        raise NotImplementedError

    # ------------------------------------------------------------------ public API
    @staticmethod
    def _as_strings(inputs) -> tf.Tensor:
        if isinstance(inputs, (str, bytes)):
            inputs = tf.constant(inputs)
        elif isinstance(inputs, (list, tuple)):
            inputs = tf.constant(list(inputs), dtype=tf.string, shape=[len(inputs)])
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise ValueError(f"`tokenize` expects strings. Received dtype {inputs.dtype}.")
        if inputs.shape.rank not in (0, 1):
            raise ValueError(
                "`tokenize` expects a scalar string or a 1-D batch of strings. "
                f"Received shape {inputs.shape}."
            )
        return inputs

    def tokenize(self, inputs, sequence_length: int | None = None) -> tf.RaggedTensor | tf.Tensor:
        """Tokenizes strings to int32 ids.

        Args:
            inputs: a Python string or list of strings, or a scalar or 1-D `tf.string`
                tensor.
            sequence_length: if set, returns a dense tensor truncated or padded (with
                `pad_id` = 0) to this length.

        Returns:
            For a batch: a `tf.RaggedTensor` of shape `(batch, None)` (or a dense
            `(batch, sequence_length)` tensor); for a scalar: a 1-D tensor of ids.
        """
        strings = self._typography(self._as_strings(inputs))
        scalar = strings.shape.rank == 0
        ids = self._tokenize_fn(tf.reshape(strings, [-1]))
        if sequence_length is not None:
            if sequence_length <= 0:
                raise ValueError(f"`sequence_length` must be positive, got {sequence_length}.")
            ids = ids[:, :sequence_length].to_tensor(default_value=0, shape=[None, sequence_length])
        return ids[0] if scalar else ids

    def __call__(self, inputs, sequence_length: int | None = None):
        """Same as `tokenize`."""
        return self.tokenize(inputs, sequence_length=sequence_length)

    def detokenize(self, ids, skip_special_tokens: bool = False) -> tf.Tensor:
        """Turns ids back into strings.

        Args:
            ids: a `tf.RaggedTensor` or dense tensor (or nested lists) of ids, of rank 1
                (one sequence) or 2 (a batch). Pad ids (0) are removed wherever they are.
            skip_special_tokens: also remove every other special token (start, end, cls,
                sep, mask, unk).

        Returns:
            A `tf.string` tensor: a scalar for a single sequence, else shape `(batch,)`.

        Raises:
            ValueError: an id is outside `[0, vocabulary_size)` (eagerly; in a graph the
                call fails with an `InvalidArgumentError` carrying the same message).
            TypeError: `ids` are not integers.
        """
        if not isinstance(ids, tf.RaggedTensor):
            if isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], (list, tuple)):
                # int64, checked below: an int32 constant would wrap large ids into range.
                ids = tf.ragged.constant(ids, dtype=tf.int64)
            else:
                ids = tf.convert_to_tensor(ids)
                if ids.shape.num_elements() == 0 and not ids.dtype.is_integer:
                    ids = tf.cast(ids, tf.int32)  # `[]` converts to float32
        scalar = ids.shape.rank == 1
        if scalar:
            ids = ids[tf.newaxis]
        if ids.shape.rank != 2:
            raise ValueError(f"`detokenize` expects ids of rank 1 or 2. Received {ids.shape}.")
        # Checked before the int32 cast, which would wrap a large int64 id into range.
        ids = check_token_ids(ids, self.vocabulary_size)
        ids = tf.cast(ids, tf.int32)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        if ids.row_splits.dtype != tf.int64:
            ids = ids.with_row_splits_dtype(tf.int64)
        drop = [self.pad_id]
        if skip_special_tokens:
            drop = sorted(set(self.special_token_ids.values()))
        keep = tf.reduce_all(ids[..., tf.newaxis] != tf.constant(drop, tf.int32), axis=-1)
        ids = tf.ragged.boolean_mask(ids, keep)
        text = self._detokenize_fn(ids)
        return text[0] if scalar else text

    @property
    def unify_typography(self) -> bool:
        """Whether `tokenize` (and `normalize`) first map typographic punctuation to ASCII:
        curly quotes and apostrophes, no-break and other Unicode spaces, dashes, the ellipsis,
        fullwidth forms (`kerasllm.tokenizers.typography.unify_typography`, TensorFlow ops, so
        `tf.data`, eager code and exported graphs agree). Saved in `tokenizer.json`; `False`
        for files that predate it. `detokenize` is never affected."""
        return self._unify_typography

    @unify_typography.setter
    def unify_typography(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"`unify_typography` must be True or False; got {value!r}.")
        self._unify_typography = value

    def _typography(self, strings: tf.Tensor) -> tf.Tensor:
        return unify_typography(strings) if self._unify_typography else strings

    def normalize(self, inputs) -> tf.Tensor:
        """Applies the text normalization that a tokenize/detokenize round trip applies.

        `detokenize(tokenize(x)) == normalize(x)` for text whose characters are all in the
        vocabulary (for SentencePiece with byte fallback and byte-level BPE: any text).
        """
        strings = self._typography(self._as_strings(inputs))
        out = self._normalize_fn(tf.reshape(strings, [-1]))
        return out[0] if strings.shape.rank == 0 else out

    @property
    def vocabulary_size(self) -> int:
        """Number of ids (the embedding table size a model needs)."""
        return len(self.get_vocabulary())

    def id_to_token(self, id: int) -> str:
        """Returns the token string of an id."""
        vocab = self.get_vocabulary()
        if not 0 <= int(id) < len(vocab):
            raise ValueError(f"id must be in [0, {len(vocab) - 1}]. Received: {id}")
        return vocab[int(id)]

    def token_to_id(self, token: str) -> int:
        """Returns the id of a token string (a vocabulary entry, not raw text)."""
        if token not in self._token_index:
            raise ValueError(f"Token {token!r} is not in the vocabulary.")
        return self._token_index[token]

    @property
    def special_tokens(self) -> dict[str, str]:
        """`{role: token string}` for every role the tokenizer defines."""
        out = dict(self._special_tokens)
        for role, fallback in self._ROLE_FALLBACK.items():
            if role not in out and fallback in out:
                out[role] = out[fallback]
        return {role: out[role] for role in SPECIAL_ROLES if role in out}

    @property
    def special_token_ids(self) -> dict[str, int]:
        """`{role: id}` for every role the tokenizer defines."""
        return {role: self._token_index[tok] for role, tok in self.special_tokens.items()}

    def _role_id(self, role: str) -> int | None:
        return self.special_token_ids.get(role)

    pad_id = property(lambda self: self._role_id("pad"), doc="Id of the pad token (0).")
    unk_id = property(lambda self: self._role_id("unk"), doc="Id of the unknown token.")
    start_id = property(lambda self: self._role_id("start"), doc="Id of the start/bos token.")
    end_id = property(lambda self: self._role_id("end"), doc="Id of the end/eos token.")
    mask_id = property(lambda self: self._role_id("mask"), doc="Id of the mask token.")
    cls_id = property(lambda self: self._role_id("cls"), doc="Id of the cls token.")
    sep_id = property(lambda self: self._role_id("sep"), doc="Id of the sep token.")

    def word_start_flags(self) -> np.ndarray:
        """Bool numpy array of shape `(vocabulary_size,)`: True for tokens that begin a
        word (and for special tokens). Used for whole-word masking."""
        flags = np.asarray(self._word_start_flags(), dtype=bool)
        flags[list(self.special_token_ids.values())] = True
        return flags

    def get_config(self) -> dict[str, Any]:
        """A JSON-serializable description: kind, options and special tokens."""
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "vocabulary_size": self.vocabulary_size,
            "special_tokens": dict(self._special_tokens),
            "special_token_ids": self.special_token_ids,
            "options": self._options(),
            "unify_typography": self._unify_typography,
        }

    def save(self, directory: str | os.PathLike) -> str:
        """Writes the tokenizer as plain files plus `tokenizer.json` into `directory`.

        Every file is written atomically (beside its destination, then renamed over it), and
        `tokenizer.json` last: a crash while saving leaves each file whole, old or new.

        Returns:
            The directory path, for `kerasllm.tokenizers.load`.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        files = self._save_files(directory)
        config = self.get_config()
        config["files"] = files
        write_json(os.path.join(directory, CONFIG_FILENAME), config)
        return directory

    @staticmethod
    def _config_file(directory: str, config: dict[str, Any], key: str) -> str:
        """The path of the file `tokenizer.json` names under `files[key]`, confined to
        `directory` (no `..`, absolute paths or symbolic links leading out of it)."""
        files = config.get("files")
        if not isinstance(files, dict) or key not in files:
            raise ValueError(
                f"{os.path.join(directory, CONFIG_FILENAME)}: `files` must name the "
                f"tokenizer's {key!r} file; got {files!r}."
            )
        return os.fspath(resolve_inside(directory, files[key], f"tokenizer {key} file"))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocabulary_size={self.vocabulary_size}, "
            f"special_tokens={self.special_tokens})"
        )


def load(directory: str | os.PathLike) -> Tokenizer:
    """Loads a tokenizer written by `Tokenizer.save`.

    Args:
        directory: the folder holding `tokenizer.json` and the vocabulary/model files.

    Returns:
        A `WordPieceTokenizer`, `SentencePieceTokenizer` or `ByteBPETokenizer` that
        produces the same ids as the saved one.

    Example:

    >>> import tempfile, kerasllm.tokenizers as kt
    >>> tok = kt.train_wordpiece(["a b c", "b c d"] * 10, vocabulary_size=40)
    >>> path = tok.save(tempfile.mkdtemp())
    >>> kt.load(path).tokenize("a b").numpy().tolist() == tok.tokenize("a b").numpy().tolist()
    True
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, CONFIG_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {CONFIG_FILENAME} in {directory!r}: not a saved tokenizer.")
    # A tokenizer.json that is a symbolic link out of the folder is refused like any file.
    config = read_json(
        resolve_inside(directory, CONFIG_FILENAME, "tokenizer config"), "Tokenizer config"
    )
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(config).__name__}.")
    kind = config.get("kind")
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown tokenizer kind {kind!r} in {path}. Known: {sorted(_REGISTRY)}.")
    tokenizer = _REGISTRY[kind]._from_files(directory, config)
    # Absent from files written before the option existed: those tokenized text unchanged.
    unify = config.get("unify_typography", False)
    if not isinstance(unify, bool):
        raise ValueError(f"{path}: `unify_typography` must be true or false; got {unify!r}.")
    tokenizer.unify_typography = unify
    recorded = config.get("vocabulary_size")
    if recorded is not None and recorded != tokenizer.vocabulary_size:
        raise ValueError(
            f"{path} records vocabulary_size={recorded!r}, but its files hold "
            f"{tokenizer.vocabulary_size} tokens (a file was replaced or truncated)."
        )
    return tokenizer


def as_text_list(texts: Iterable[str] | tf.data.Dataset) -> Sequence[str]:
    """Materializes training texts (Python strings/bytes or a string dataset) as str."""
    if isinstance(texts, tf.data.Dataset):
        out = []
        for item in texts.unbatch() if texts.element_spec.shape.rank else texts:
            out.append(item.numpy().decode("utf-8", errors="replace"))
        return out
    out = []
    for t in texts:
        if isinstance(t, bytes):
            t = t.decode("utf-8", errors="replace")
        if not isinstance(t, str):
            raise ValueError(f"Training texts must be strings. Found {type(t).__name__}.")
        out.append(t)
    return out
