"""Hugging Face BERT checkpoint folders <-> kerasllm `Encoder` + `WordPieceTokenizer`.

A checkpoint folder holds `config.json`, the weights (`model.safetensors`, a sharded
`model.safetensors.index.json`, or `pytorch_model.bin`) and, for the tokenizer, `vocab.txt` with
`tokenizer_config.json`. Nothing here needs torch or transformers.
"""

from __future__ import annotations

import os
from pathlib import Path

from kerasllm.convert.bert import (
    bert_state_dict,
    encoder_config_from_hf,
    hf_config_from_encoder,
    load_bert_weights,
    split_backbone_tensors,
)
from kerasllm.convert.tensor_files import read_tensors, write_safetensors
from kerasllm.models import Encoder
from kerasllm.tokenizers import WordPieceTokenizer
from kerasllm.utils.files import atomic_write_text, read_json, resolve_inside, write_json

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
# Weight files in order of preference, as `transformers` looks for them.
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# tokenizer_config.json key -> WordPieceTokenizer special-token role.
_SPECIAL_TOKEN_KEYS = {
    "pad_token": "pad",
    "unk_token": "unk",
    "cls_token": "cls",
    "sep_token": "sep",
    "mask_token": "mask",
}
_DEFAULT_SPECIAL_TOKENS = {
    "pad": "[PAD]",
    "unk": "[UNK]",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "mask": "[MASK]",
}


def _read_json(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object.")
    return data


def _checkpoint_dir(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Checkpoint folder {directory} does not exist.")
    return directory


def read_hf_config(directory: str | os.PathLike) -> dict:
    """The parsed `config.json` of a Hugging Face checkpoint folder."""
    path = _checkpoint_dir(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}: not a Hugging Face checkpoint.")
    return _read_json(path)


def read_checkpoint_tensors(directory: str | os.PathLike) -> dict:
    """All weight tensors of a checkpoint folder as numpy arrays (shards merged).

    Looks for `model.safetensors`, then a sharded safetensors index, then `pytorch_model.bin`
    (read without torch), then a sharded `.bin` index.
    """
    directory = _checkpoint_dir(directory)
    for name in WEIGHTS_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return read_tensors(path)
        tensors = {}
        for shard in _shard_files(directory, path):
            tensors.update(read_tensors(shard))
        return tensors
    raise FileNotFoundError(f"{directory} has no weights file; looked for {list(WEIGHTS_FILES)}.")


def _shard_files(directory: Path, index: Path) -> list[Path]:
    """The shard files a sharded checkpoint's index names, each confined to the checkpoint folder.

    The names come from the (untrusted) index's `weight_map`; one like `../../secret.bin`, an
    absolute path or a symbolic link out of the folder is refused, naming it.
    """
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(shard, str) for shard in weight_map.values()
    ):
        raise ValueError(
            f"{index}: 'weight_map' must be an object mapping tensor names to shard file names."
        )
    shards = []
    for shard in sorted(set(weight_map.values())):
        try:
            shards.append(resolve_inside(directory, shard, "weight shard"))
        except ValueError as error:
            raise ValueError(f"{index}: {error}") from None
    return shards


def load_bert_checkpoint(directory: str | os.PathLike, **overrides) -> Encoder:
    """Builds an `Encoder` from a Hugging Face BERT-family checkpoint folder and loads its weights.

    Args:
        directory: folder with `config.json` and `model.safetensors` (or `pytorch_model.bin`, or
            shards). Task checkpoints (`BertForMaskedLM`, ...) load their "bert." backbone.
        **overrides: hyperparameters that do not change the weights' shapes, e.g.
            `dropout=0.0`, `dtype="mixed_bfloat16"`.

    Returns:
        The built `Encoder` with every checkpoint weight loaded.

    Raises:
        CheckpointMismatchError: a tensor is missing, misshapen or unexpected (names it); no
            model is returned, so nothing is half-loaded.
        ValueError: config.json describes something other than a BERT-family encoder.

    Example:
    >>> from kerasllm.convert import load_bert_checkpoint
    >>> encoder = load_bert_checkpoint("path/to/bert-base-uncased")  # doctest: +SKIP
    """
    directory = _checkpoint_dir(directory)
    hf_config = read_hf_config(directory)
    tensors = read_checkpoint_tensors(directory)
    backbone, _ = split_backbone_tensors(tensors)
    config = encoder_config_from_hf(hf_config, pooler="pooler.dense.weight" in backbone)
    config.update(overrides)
    encoder = Encoder(**config)
    load_bert_weights(encoder, tensors)
    return encoder


def _token_string(value) -> str | None:
    # Newer tokenizer configs store special tokens as AddedToken dicts.
    if isinstance(value, dict):
        return value.get("content")
    return value


def load_bert_tokenizer(directory: str | os.PathLike) -> WordPieceTokenizer:
    """The WordPiece tokenizer of a Hugging Face BERT checkpoint folder.

    Reads `vocab.txt` and the options of `tokenizer_config.json` the way `BertTokenizer` does:
    `do_lower_case` (default True), `strip_accents` (default: same as lowercasing),
    `tokenize_chinese_chars` and the special tokens.

    Returns:
        A `kerasllm.tokenizers.WordPieceTokenizer` with `cls_id`/`sep_id` set; it produces the ids
        of `BertTokenizer` without the `[CLS]`/`[SEP]` frame (pipelines add it).

    Example:
    >>> from kerasllm.convert import load_bert_tokenizer
    >>> load_bert_tokenizer("path/to/bert-base-uncased").tokenize("Hello!")  # doctest: +SKIP
    """
    directory = _checkpoint_dir(directory)
    vocab = directory / VOCAB_FILE
    if not vocab.is_file():
        raise FileNotFoundError(f"{directory} has no {VOCAB_FILE}: not a WordPiece checkpoint.")
    options = {}
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):  # later files win
        path = directory / name
        if path.is_file():
            options.update(_read_json(path))
    if options.get("do_basic_tokenize") is False:
        raise ValueError(
            f"{directory}: do_basic_tokenize=False is not supported (the WordPieceTokenizer "
            "always splits on whitespace and punctuation first)."
        )
    lowercase = bool(options.get("do_lower_case", True))
    strip_accents = options.get("strip_accents")
    special_tokens = dict(_DEFAULT_SPECIAL_TOKENS)
    for key, role in _SPECIAL_TOKEN_KEYS.items():
        token = _token_string(options.get(key))
        if token:
            special_tokens[role] = token
    return WordPieceTokenizer(
        str(vocab),
        lowercase=lowercase,
        strip_accents=lowercase if strip_accents is None else bool(strip_accents),
        split_on_cjk=bool(options.get("tokenize_chinese_chars", True)),
        special_tokens=special_tokens,
    )


def save_bert_checkpoint(
    encoder: Encoder,
    directory: str | os.PathLike,
    tokenizer: WordPieceTokenizer | None = None,
) -> Path:
    """Writes a BERT-shaped `Encoder` (and its tokenizer) as a Hugging Face `BertModel` folder.

    Writes `config.json` and `model.safetensors`, plus `vocab.txt`, `tokenizer_config.json` and
    `special_tokens_map.json` when a tokenizer is given. `load_bert_checkpoint` and
    `transformers.BertModel.from_pretrained` both read the result.

    Args:
        encoder: a BERT-shaped `Encoder` (post-norm, learned positions, biases, ...).
        directory: the output folder (created).
        tokenizer: optional `WordPieceTokenizer` whose vocabulary size matches the encoder's.

    Returns:
        The folder path.

    Example:
    >>> import tempfile
    >>> from kerasllm.models import Encoder
    >>> from kerasllm.convert import load_bert_checkpoint, save_bert_checkpoint
    >>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                   intermediate_dim=16, max_sequence_length=16)
    >>> path = save_bert_checkpoint(encoder, tempfile.mkdtemp())
    >>> load_bert_checkpoint(path).count_params() == encoder.count_params()
    True
    """
    hf_config = hf_config_from_encoder(encoder)
    if tokenizer is not None:
        if not isinstance(tokenizer, WordPieceTokenizer):
            raise ValueError(
                f"A BERT checkpoint needs a WordPieceTokenizer; got {type(tokenizer).__name__}."
            )
        if tokenizer.suffix_indicator != "##":
            raise ValueError(
                f"BERT tokenizers mark word continuations with '##'; this tokenizer uses "
                f"{tokenizer.suffix_indicator!r}."
            )
        if tokenizer.vocabulary_size != encoder.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {tokenizer.vocabulary_size} tokens but the encoder's "
                f"vocabulary_size is {encoder.vocabulary_size}."
            )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(bert_state_dict(encoder), directory / WEIGHTS_FILES[0], {"format": "pt"})
    _write_json(directory / CONFIG_FILE, hf_config)
    if tokenizer is not None:
        _save_tokenizer(tokenizer, directory, encoder.max_sequence_length)
    return directory


def _write_json(path: Path, data: dict) -> None:
    write_json(path, data)


def _save_tokenizer(tokenizer: WordPieceTokenizer, directory: Path, max_length: int) -> None:
    atomic_write_text(
        directory / VOCAB_FILE, "".join(token + "\n" for token in tokenizer.get_vocabulary())
    )
    roles = tokenizer.special_tokens
    special = {key: roles[role] for key, role in _SPECIAL_TOKEN_KEYS.items() if role in roles}
    _write_json(directory / SPECIAL_TOKENS_MAP_FILE, special)
    _write_json(
        directory / TOKENIZER_CONFIG_FILE,
        {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": tokenizer.lowercase,
            "strip_accents": tokenizer.strip_accents,
            "tokenize_chinese_chars": tokenizer.split_on_cjk,
            "model_max_length": max_length,
            **special,
        },
    )
