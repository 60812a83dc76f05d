"""What the Hugging Face converters (GPT-2, Llama family, T5, BART) share.

- `Assignment` / `assign_all`: checkpoint tensors -> model variables, every name and shape
  checked before anything is assigned (all or nothing), every checkpoint tensor accounted for;
- `byte_bpe_from_tokenizer_json`: a byte-level BPE `tokenizer.json` (SmolLM, Llama 3, Qwen2
  style) as a `ByteBPETokenizer`;
- `embedding_assignments` / `drop_tied_head` / `load_decoder_checkpoint`: the embedding and
  output-matrix mapping, the tied `lm_head` check and the folder -> (`Decoder`, tokenizer) flow
  that every decoder family shares (its config translation, tokenizer and tensor names apart);
- `state_dict`: the inverse of the assignments (export back to Hugging Face names);
- `load_hf_checkpoint`: a checkpoint folder -> (backbone with weights, tokenizer), dispatched
  on `config.json`'s `model_type` (GPT-2, Llama family, T5, BART; what
  `kerasllm.zoo.get(folder)` calls).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from kerasllm.convert.bert import CheckpointMismatchError
from kerasllm.convert.checkpoint import read_checkpoint_tensors, read_hf_config
from kerasllm.convert.tensor_files import write_safetensors
from kerasllm.models import Decoder
from kerasllm.tokenizers import ByteBPETokenizer
from kerasllm.utils.files import atomic_write_bytes, read_json, resolve_inside, write_json


def _identity(tensor: np.ndarray) -> np.ndarray:
    return tensor


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One model variable and the checkpoint tensor (and transform) that fills it.

    `inverse` turns the variable's value back into the checkpoint tensor (export). None (the
    default) means the identity for an untransformed tensor, and "not invertible" otherwise (a
    slice of a fused tensor, or a transform whose inverse was not given), so `state_dict`
    refuses rather than exporting a wrong tensor.
    """

    hf_name: str
    variable: keras.Variable
    transform: Callable[[np.ndarray], np.ndarray] = _identity
    inverse: Callable[[np.ndarray], np.ndarray] | None = None

    def exporter(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The inverse transform, or None when there is none."""
        if self.inverse is None and self.transform is _identity:
            return _identity
        return self.inverse


def transposed(tensor: np.ndarray) -> np.ndarray:
    """An `nn.Linear` weight (out, in) as a Keras kernel (in, out) (its own inverse)."""
    return tensor.T


def linear(hf_name: str, variable: keras.Variable) -> Assignment:
    """An `nn.Linear` weight (out, in) <-> a Keras kernel (in, out)."""
    return Assignment(hf_name, variable, transposed, transposed)


def embedding_assignments(
    decoder: Decoder, embedding_name: str, swap: int, head_name: str = "lm_head.weight"
) -> list[Assignment]:
    """The token embeddings (rows exchanged by `swap`, see `pad_swap`) and, when the decoder's
    output projection is untied, the `nn.Linear` output matrix (vocabulary rows, transposed):
    the same for every Hugging Face decoder family."""
    rows = swap_rows(swap)
    out = [Assignment(embedding_name, decoder.token_embedding.embeddings, rows, rows)]
    if not decoder.tie_embeddings:
        out.append(
            Assignment(
                head_name,
                decoder.token_embedding.reverse_embeddings,
                lambda tensor: rows(tensor).T,
                lambda kernel: rows(kernel.T),
            )
        )
    return out


def drop_tied_head(
    tensors: Mapping[str, np.ndarray],
    decoder: Decoder,
    embedding_name: str,
    head_name: str = "lm_head.weight",
) -> dict[str, np.ndarray]:
    """`tensors` without the output matrix of a tied model (the copy transformers saves),
    checked equal to the embeddings.

    Raises:
        CheckpointMismatchError: the copy differs (the checkpoint is not really tied).
    """
    tensors = dict(tensors)
    if not decoder.tie_embeddings or head_name not in tensors:
        return tensors
    head = tensors.pop(head_name)
    embeddings = tensors.get(embedding_name)
    if embeddings is not None and not np.array_equal(head, embeddings):
        raise CheckpointMismatchError(
            f"{head_name} differs from {embedding_name}, but config.json ties them "
            "(tie_word_embeddings); set tie_word_embeddings=false to load both."
        )
    return tensors


def state_dict(family: str, assignments: Sequence[Assignment]) -> dict[str, np.ndarray]:
    """The checkpoint tensors that `assignments` read, rebuilt from the model's variables
    (float32, contiguous): what `assign_all` would load back unchanged.

    Raises:
        ValueError: an assignment's transform has no inverse (named).
    """
    out = {}
    for item in assignments:
        inverse = item.exporter()
        if inverse is None:
            raise ValueError(
                f"The {family} tensor {item.hf_name!r} cannot be rebuilt from {item.variable.path}."
            )
        value = inverse(np.asarray(keras.ops.convert_to_numpy(item.variable), "float32"))
        out[item.hf_name] = np.ascontiguousarray(value)
    return out


def copy_tokenizer_files(
    source: str | os.PathLike, directory: str | os.PathLike, names: Sequence[str]
) -> None:
    """Copies the tokenizer files `names` that `source` has into `directory` (atomically;
    names confined to `source`), so an exported checkpoint folder carries its tokenizer."""
    source = Path(source)
    for name in names:
        if (source / name).is_file():
            path = resolve_inside(source, name, "tokenizer file")
            atomic_write_bytes(Path(directory) / name, path.read_bytes())


def decoder_of(model) -> Decoder:
    """The `Decoder` of a CausalLM (or the Decoder itself) that an exporter writes."""
    decoder = getattr(model, "backbone", model)
    if not isinstance(decoder, Decoder):
        raise ValueError(f"`model` must be a Decoder or a CausalLM; got {type(model).__name__}.")
    return decoder


def write_checkpoint(
    directory: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    hf_config: Mapping,
    tokenizer_from: str | os.PathLike | None,
    tokenizer_files: Sequence[str],
) -> Path:
    """Writes a Hugging Face checkpoint folder: `model.safetensors`, `config.json` and, from
    `tokenizer_from`, the tokenizer files `tokenizer_files` it has. Returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(dict(tensors), directory / "model.safetensors", {"format": "pt"})
    write_json(directory / "config.json", dict(hf_config), indent=2)
    if tokenizer_from is not None:
        copy_tokenizer_files(tokenizer_from, directory, tokenizer_files)
    return directory


def load_decoder_checkpoint(
    directory: str | os.PathLike,
    config_from_hf: Callable[[Mapping], dict],
    load_tokenizer: Callable[[Path, Mapping], tuple],
    load_weights: Callable,
    weights: bool = True,
    **overrides,
):
    """(`Decoder`, tokenizer) of a decoder checkpoint folder: the config translated by
    `config_from_hf` (with `overrides`), the tokenizer and id exchange from `load_tokenizer`,
    and, when `weights`, every tensor loaded by `load_weights(decoder, tensors, swap)`."""
    from kerasllm.models import Decoder

    hf_config = read_hf_config(directory)
    decoder = Decoder(**{**config_from_hf(hf_config), **overrides})
    tokenizer, swap = load_tokenizer(Path(directory), hf_config)
    if weights:
        load_weights(decoder, read_weights(directory), swap)
    return decoder, tokenizer


def assign_all(
    family: str,
    assignments: Sequence[Assignment],
    tensors: Mapping[str, np.ndarray],
    ignored: Callable[[str], bool] = lambda name: False,
) -> None:
    """Checks every assignment (name, shape, float dtype), then assigns them all.

    Args:
        family: named in errors ("GPT-2", "Llama").
        assignments: one per model variable; several may read one tensor (a fused projection).
        tensors: the checkpoint's tensors, with their canonical names.
        ignored: names of tensors that are buffers or otherwise not weights (not reported).

    Raises:
        CheckpointMismatchError: names the first missing, misshapen or unused tensor; nothing
            was assigned.
    """
    values, used = [], set()
    for item in assignments:
        ours = f"{item.variable.path} {tuple(item.variable.shape)}"
        if item.hf_name not in tensors:
            first = ", ".join(repr(n) for n in list(tensors)[:3])
            raise CheckpointMismatchError(
                f"The {family} checkpoint has no tensor {item.hf_name!r} for our weight "
                f"{ours}. Its first tensors are {first}."
            )
        tensor = np.asarray(tensors[item.hf_name])
        if not np.issubdtype(tensor.dtype, np.floating):
            raise CheckpointMismatchError(
                f"Checkpoint tensor {item.hf_name!r} has dtype {tensor.dtype}; expected floats."
            )
        value = item.transform(tensor)
        if tuple(value.shape) != tuple(item.variable.shape):
            raise CheckpointMismatchError(
                f"Shape mismatch: checkpoint tensor {item.hf_name!r} {tuple(tensor.shape)} "
                f"gives {tuple(value.shape)} for our weight {ours}. Build the model from the "
                "checkpoint's config.json."
            )
        values.append((item.variable, value))
        used.add(item.hf_name)
    unused = [name for name in tensors if name not in used and not ignored(name)]
    if unused:
        raise CheckpointMismatchError(
            f"Checkpoint tensor {unused[0]!r} {tuple(np.shape(tensors[unused[0]]))} has no "
            f"counterpart in this {family} model; {len(unused)} tensor(s) would be left unused."
        )
    for variable, value in values:
        variable.assign(np.ascontiguousarray(value).astype(variable.dtype))


def require(hf_config: Mapping, keys: Sequence[str], family: str) -> None:
    """Raises a ValueError naming the `config.json` keys a family needs that are absent."""
    missing = [key for key in keys if key not in hf_config]
    if missing:
        raise ValueError(f"{family} config.json lacks the required keys {missing}.")


def refuse(key: str, value, reason: str) -> ValueError:
    """The error for a `config.json` setting kerasllm cannot represent, naming the key."""
    return ValueError(f"config.json sets {key}={value!r}: {reason}")


# ----------------------------------------------------------------------- tokenizers
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG_JSON = "tokenizer_config.json"


def _token_string(value) -> str | None:
    """A special token of `tokenizer_config.json`: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def end_token(directory: Path, hf_config: Mapping, vocabulary: Mapping[str, int]) -> str:
    """The checkpoint's end-of-sequence token: `tokenizer_config.json` `eos_token`, else
    `config.json` `eos_token_id`.

    Raises:
        ValueError: neither names a token of the vocabulary.
    """
    config_path = directory / TOKENIZER_CONFIG_JSON
    tokenizer_config = read_json(config_path) if config_path.is_file() else {}
    token = _token_string(tokenizer_config.get("eos_token")) if tokenizer_config else None
    if token in vocabulary:
        return token
    eos_id = hf_config.get("eos_token_id")
    if isinstance(eos_id, list):
        eos_id = eos_id[0] if eos_id else None
    inverse = {i: t for t, i in vocabulary.items()}
    if isinstance(eos_id, int) and eos_id in inverse:
        return inverse[eos_id]
    raise refuse(
        "eos_token_id",
        eos_id,
        "kerasllm needs the end-of-sequence token (it pads with it, at id 0); neither "
        "tokenizer_config.json's eos_token nor config.json's eos_token_id names one.",
    )


def pad_swap(vocabulary: Mapping[str, int], end: str) -> int:
    """The Hugging Face id that trades places with id 0 in kerasllm (0 when none does).

    kerasllm pads with id 0 and drops id 0 when detokenizing; GPT-2 and Llama 3 vocabularies
    have an ordinary token there ("!"). The converters then exchange ids 0 and the end token's
    id, in the vocabulary and in the embedding and output matrices alike, so the end token
    doubles as the pad token (as KerasHub's GPT-2 does) and the model computes exactly the same
    function: logits at kerasllm id i are Hugging Face's at `swap_ids(i)`.
    """
    return 0 if vocabulary[end] == 0 else vocabulary[end]


def swap_ids(ids, swap: int):
    """Hugging Face ids <-> kerasllm ids (the exchange is its own inverse)."""
    ids = np.asarray(ids)
    if swap == 0:
        return ids
    return np.where(ids == 0, swap, np.where(ids == swap, 0, ids))


def swap_rows(swap: int) -> Callable[[np.ndarray], np.ndarray]:
    """A tensor transform exchanging rows 0 and `swap` (vocabulary-indexed matrices)."""

    def transform(tensor: np.ndarray) -> np.ndarray:
        if swap == 0:
            return tensor
        out = tensor.copy()
        out[[0, swap]] = tensor[[swap, 0]]
        return out

    return transform


def byte_bpe_tokenizer(
    directory: Path, hf_config: Mapping, vocabulary: Mapping[str, int], merges
) -> tuple[ByteBPETokenizer, int]:
    """A `ByteBPETokenizer` over a Hugging Face byte-level vocabulary with kerasllm's pad
    contract, and the id exchanged with 0 (see `pad_swap`). Roles: "pad" and "end" are both the
    end-of-sequence token; no "start" role (prompts get no start token, as Hugging Face's GPT-2
    and byte-level tokenizers do by default)."""
    vocabulary = {str(k): int(v) for k, v in vocabulary.items()}
    end = end_token(directory, hf_config, vocabulary)
    swap = pad_swap(vocabulary, end)
    if swap:
        first = next(token for token, i in vocabulary.items() if i == 0)
        vocabulary[first], vocabulary[end] = swap, 0
    tokenizer = ByteBPETokenizer(vocabulary, merges, special_tokens={"pad": end, "end": end})
    return tokenizer, swap


def byte_bpe_from_tokenizer_json(
    directory: str | os.PathLike, hf_config: Mapping
) -> tuple[ByteBPETokenizer, int]:
    """(`ByteBPETokenizer`, id exchanged with 0: see `pad_swap`) from a byte-level BPE
    `tokenizer.json` (SmolLM / Llama 3 style).

    Refuses (naming the key) what the GPT-2 byte-level pipeline does not reproduce: another
    model type, a normalizer, a pre-tokenizer other than plain `ByteLevel` with the GPT-2 split
    pattern, or `add_prefix_space`.
    """
    directory = Path(directory)
    path = resolve_inside(directory, TOKENIZER_JSON, "tokenizer file")
    spec = read_json(path, "tokenizer.json")
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise refuse("model.type", model.get("type"), f"{path} is not a BPE tokenizer.")
    if spec.get("normalizer") is not None:
        raise refuse(
            "normalizer",
            (spec["normalizer"] or {}).get("type"),
            "kerasllm's byte-level BPE "
            "applies no normalizer (SentencePiece-style Llama 1/2 tokenizers are not supported).",
        )
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise refuse(
            "pre_tokenizer",
            pre.get("type"),
            "only a ByteLevel pre-tokenizer with the GPT-2 "
            "split pattern maps to kerasllm's byte-level BPE.",
        )
    if pre.get("add_prefix_space"):
        raise refuse("pre_tokenizer.add_prefix_space", True, "not supported for tokenizer.json.")
    vocabulary = dict(model.get("vocab") or {})
    for added in spec.get("added_tokens") or []:
        vocabulary.setdefault(added["content"], added["id"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return byte_bpe_tokenizer(directory, hf_config, vocabulary, merges)


# ---------------------------------------------------------------------- dispatch


def _loaders() -> dict[str, Callable]:
    from kerasllm.convert import bart, gpt2, llama, t5

    return {
        "gpt2": gpt2.load_gpt2_checkpoint,
        **{model_type: bart.load_bart_checkpoint for model_type in bart.MODEL_TYPES},
        **{model_type: llama.load_llama_checkpoint for model_type in llama.MODEL_TYPES},
        **{model_type: t5.load_t5_checkpoint for model_type in t5.MODEL_TYPES},
    }


def _not_mapped(model_type) -> str:
    """Why a known model type is not converted ("" for others)."""
    from kerasllm.convert import llama

    reason = llama.NOT_MAPPED.get(model_type)
    return f" {reason}" if reason else ""


def hf_model_types() -> list[str]:
    """The `config.json` `model_type`s that `load_hf_checkpoint` converts."""
    return sorted(_loaders())


def hf_task(directory: str | os.PathLike) -> str:
    """The kerasllm task of a checkpoint folder's own model: "seq2seq_lm" for T5 and BART, else
    "causal_lm" (what `kerasllm.zoo.get(folder)` builds by default)."""
    from kerasllm.convert import bart, t5

    model_type = read_hf_config(directory).get("model_type")
    return "seq2seq_lm" if model_type in (*t5.MODEL_TYPES, *bart.MODEL_TYPES) else "causal_lm"


def hf_framing(directory: str | os.PathLike, tokenizer) -> dict:
    """How a checkpoint folder's Hugging Face tokenizer frames its inputs, as the options of
    its task's preprocessor (what `kerasllm.zoo.get(folder)` builds): T5 `text </s>` and BART
    `<s> text </s>` (`Seq2SeqLMPreprocessor`'s `source_start_token` / `source_end_token`),
    Llama-family prompts `<s> text` when its tokenizer adds the start token
    (`CausalLMPreprocessor`'s `add_start_token`), GPT-2 prompts unframed (its tokenizer adds
    none)."""
    from kerasllm.convert import bart, llama, t5

    model_type = read_hf_config(directory).get("model_type")
    if model_type in t5.MODEL_TYPES:
        return dict(t5.FRAMING)
    if model_type in bart.MODEL_TYPES:
        return dict(bart.FRAMING)
    if model_type in llama.MODEL_TYPES:
        return llama.llama_framing(directory, tokenizer)
    return {}


def load_hf_checkpoint(directory: str | os.PathLike, weights: bool = True, **overrides) -> tuple:
    """A Hugging Face checkpoint folder as a kerasllm backbone and its tokenizer: a `Decoder`
    and a `ByteBPETokenizer` (GPT-2, Llama, Mistral, Qwen2; a `SentencePieceTokenizer` for a Llama
    `tokenizer.model`), or an `EncoderDecoder` and a `SentencePieceTokenizer` (T5) or a
    `ByteBPETokenizer` (BART).

    Args:
        directory: folder with `config.json`, the weights (safetensors, `pytorch_model.bin`,
            or a sharded index) and the tokenizer files.
        weights: False builds the architecture with random weights (no tensor is read).
        **overrides: hyperparameters that keep the weights' shapes (`dropout`, `dtype`, ...).

    Raises:
        ValueError: `model_type` is not one of `hf_model_types()`, or a config key has no
            kerasllm equivalent (named).
        CheckpointMismatchError: a tensor is missing, misshapen or unused (named).
    """
    hf_config = read_hf_config(directory)
    model_type = hf_config.get("model_type")
    loaders = _loaders()
    if model_type not in loaders:
        raise refuse(
            "model_type",
            model_type,
            f"kerasllm converts {sorted(loaders)} checkpoints here (BERT-family encoders: "
            f"kerasllm.convert.load_bert_checkpoint).{_not_mapped(model_type)}",
        )
    return loaders[model_type](directory, weights=weights, **overrides)


def load_hf_tokenizer(directory: str | os.PathLike):
    """The tokenizer of a Hugging Face checkpoint folder (no model is built).

    GPT-2 and BART: `vocab.json` + `merges.txt`; Llama family: a byte-level BPE
    `tokenizer.json` or a SentencePiece `tokenizer.model`; T5: `spiece.model` with its
    sentinels.
    """
    from kerasllm.convert import bart, gpt2, llama, t5

    hf_config = read_hf_config(directory)
    model_type = hf_config.get("model_type")
    if model_type not in _loaders():
        raise refuse(
            "model_type",
            model_type,
            f"kerasllm converts {hf_model_types()} here.{_not_mapped(model_type)}",
        )
    if model_type == "gpt2":
        return gpt2.load_gpt2_tokenizer(directory, hf_config)[0]
    if model_type in t5.MODEL_TYPES:
        return t5.load_t5_tokenizer(directory)
    if model_type in bart.MODEL_TYPES:
        return bart.load_bart_tokenizer(directory, hf_config)[0]
    return llama.load_llama_tokenizer(directory, hf_config)[0]


def hf_id_swap(directory: str | os.PathLike) -> int:
    """The Hugging Face id that kerasllm's converted model and tokenizer give id 0 (and whose
    id 0 they give that id), or 0 when the ids are identical; see `pad_swap`."""
    from kerasllm.convert import bart, gpt2, llama, t5

    hf_config = read_hf_config(directory)
    if hf_config.get("model_type") == "gpt2":
        return gpt2.load_gpt2_tokenizer(directory, hf_config)[1]
    if hf_config.get("model_type") in t5.MODEL_TYPES:
        return 0
    if hf_config.get("model_type") in bart.MODEL_TYPES:
        return bart.load_bart_tokenizer(directory, hf_config)[1]
    return llama.load_llama_tokenizer(directory, hf_config)[1]


def read_weights(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """The checkpoint's tensors (safetensors, `.bin` without torch, shards merged)."""
    return read_checkpoint_tensors(directory)
