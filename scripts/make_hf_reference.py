"""Writes the Hugging Face parity fixtures of `tests/convert/test_hf_*.py` (GPT-2, Llama, T5,
BART).

This script runs once, in a separate environment that has torch and transformers (kerasllm
itself never needs them):

    python3.11 -m venv /tmp/hfenv
    /tmp/hfenv/bin/pip install torch==2.13.0 transformers safetensors sentencepiece tokenizers numpy
    /tmp/hfenv/bin/python scripts/make_hf_reference.py
    # one family only (here Qwen2), leaving the other fixtures as they are:
    /tmp/hfenv/bin/python scripts/make_hf_reference.py --only qwen2
    # once, on folders written by kerasllm.convert.save_llama_checkpoint / save_gpt2_checkpoint:
    /tmp/hfenv/bin/python scripts/make_hf_reference.py --check-export DIR hf_llama

It trains tiny byte-level BPE tokenizers on `CORPUS`, builds tiny randomly initialised models
(every weight drawn at random, biases and norm scales included, so a mapping that drops or
swaps one cannot pass) and writes, under `tests/fixtures/`:
- `hf_gpt2/`: a `GPT2LMHeadModel` (`config.json`, `model.safetensors`) with a GPT-2-layout
  `vocab.json` (the 256 byte symbols in GPT-2's order, then one token per merge, then
  `<|endoftext|>`) and `merges.txt`;
- `hf_llama/`: a `LlamaForCausalLM` with grouped-query attention (4 heads, 2 key/value
  heads), `rope_theta` 500000 and untied embeddings, with a byte-level BPE `tokenizer.json`
  (SmolLM/Llama-3 style);
- `hf_llama_tied/`: a smaller Llama with tied embeddings (SmolLM's layout), one key/value
  head and Llama 3's rope scaling (`LLAMA3_SCALING`), sharing the Llama tokenizer;
- `hf_t5/`, `hf_t5_v1_1/`: `T5ForConditionalGeneration`s (2+2 layers, 8 relative buckets):
  v1.0 (ReLU, tied embeddings, output rescaled by d_model ** -0.5) and v1.1 (gated GELU,
  untied), with a unigram `spiece.model` in T5's layout (pad 0, eos 1, unk 2, no extra ids);
  their references hold `ids_<i>` (source ids ending with `</s>`), `decoder_ids_<i>` (pad
  first), the decoder `logits_<i>` and 8 greedy decoder tokens `greedy_<i>`;
- `hf_t5_sentinels/` + `hf_t5_sentinels_reference.json`: T5's sentinel layout, tokenizer only
  (`make_t5_sentinels`);
- `hf_llama_spm/`: a Llama with only a SentencePiece `tokenizer.model` (`make_llama_sentencepiece`);
- `hf_qwen2/`: a `Qwen2ForCausalLM` (biases on the query/key/value projections only, tied
  embeddings, grouped-query attention) reusing `hf_llama/`'s tokenizer (`make_qwen2`);
- `hf_bart/`: a `BartForConditionalGeneration` with BART's byte-level BPE (`make_bart`);
- `hf_<family>_reference.npz`: `sentences` (`SENTENCES`) and per sentence `ids_<i>` (the
  tokenizer's ids, no special tokens), `logits_<i>` (float32, (T, V), one unpadded sequence)
  and `greedy_<i>` (the `GREEDY_STEPS` tokens that greedy decoding appends, end-of-text not
  stopping it).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import tokenizers
import torch
import transformers

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SEED = 29
GENERATOR = torch.Generator().manual_seed(SEED + 1)
# Llama 3's rope scaling at a tiny context, so that head_dim 4's two frequencies fall in the
# interpolated band and in the divided one.
LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
GREEDY_STEPS = 8

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A tiny model is still a model: it has weights, a tokenizer and a config.",
    "Hello world! Hello again, world; hello, hello.",
    "Transformers read tokens, attend to earlier tokens and predict the next one.",
    "Numbers like 12, 345 and 6789 are split into pieces.",
    "Café au lait, naïve résumé, jalapeño.",
] * 20
SENTENCES = [
    "Hello world!",
    "The lazy fox reads tokens.",
    "Numbers: 42 and 7, café naïve.",
    "  spaces  and\nnew lines",
]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable unicode character table (its vocabulary's byte symbols)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def train_byte_bpe(vocabulary_size: int, special_tokens: list[str]) -> tokenizers.Tokenizer:
    model = tokenizers.Tokenizer(tokenizers.models.BPE())
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocabulary_size,
        special_tokens=special_tokens,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator(CORPUS, trainer=trainer)
    return model


def randomize(model: torch.nn.Module) -> None:
    """Every parameter at random: norm scales around 1, the rest around 0 (std 0.2)."""
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm = "norm" in name or name.split(".")[-2].startswith("ln")
            if is_norm and name.endswith("weight"):
                parameter.copy_(1.0 + 0.1 * noise)
            else:
                parameter.copy_(0.2 * noise)


def reference(model: torch.nn.Module, ids_per_sentence: list[list[int]]) -> dict:
    """Logits of each unpadded sentence and its greedy continuation (plain argmax loop)."""
    out = {"sentences": np.array(SENTENCES)}
    model.eval()
    with torch.no_grad():
        for i, ids in enumerate(ids_per_sentence):
            tokens = torch.tensor([ids])
            out[f"ids_{i}"] = np.array(ids, np.int32)
            out[f"logits_{i}"] = model(tokens).logits[0].numpy().astype(np.float32)
            generated = []
            for _ in range(GREEDY_STEPS):
                next_id = int(model(tokens).logits[0, -1].argmax())
                generated.append(next_id)
                tokens = torch.cat([tokens, torch.tensor([[next_id]])], axis=1)
            out[f"greedy_{i}"] = np.array(generated, np.int32)
    return out


def fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def make_gpt2() -> None:
    trained = train_byte_bpe(320, ["<|endoftext|>"])
    merges = [
        tuple(m) if not isinstance(m, str) else tuple(m.split(" "))
        for m in json.loads(trained.to_str())["model"]["merges"]
    ]
    # GPT-2's layout: byte symbols in its table's order, then each merge's result in merge
    # order, then <|endoftext|> last (so id 0 is "!", not a special token).
    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    folder = fresh(FIXTURES / "hf_gpt2")
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8"
    )
    tokenizer = transformers.GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    config = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=vocab["<|endoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(SEED)
    model = transformers.GPT2LMHeadModel(config)
    randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    ids = [tokenizer.encode(s) for s in SENTENCES]
    np.savez_compressed(FIXTURES / "hf_gpt2_reference.npz", **reference(model, ids))


def make_llama() -> None:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trained = train_byte_bpe(300, specials)
    folders = {"hf_llama": dict(tie=False), "hf_llama_tied": dict(tie=True)}
    for name, options in folders.items():
        folder = fresh(FIXTURES / name)
        trained.save(str(folder / "tokenizer.json"))
        fast = transformers.PreTrainedTokenizerFast(
            tokenizer_file=str(folder / "tokenizer.json"),
            bos_token="<|im_start|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
        )
        fast.save_pretrained(folder)
        tie = options["tie"]
        config = transformers.LlamaConfig(
            vocab_size=trained.get_vocab_size(),
            hidden_size=16 if tie else 32,
            intermediate_size=40 if tie else 64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2 if not tie else 1,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_theta=10000.0 if tie else 500000.0,
            rope_scaling=LLAMA3_SCALING if tie else None,
            tie_word_embeddings=tie,
            bos_token_id=fast.bos_token_id,
            eos_token_id=fast.eos_token_id,
            pad_token_id=fast.pad_token_id,
        )
        torch.manual_seed(SEED)
        model = transformers.LlamaForCausalLM(config)
        randomize(model)
        if tie:
            model.tie_weights()
        model.save_pretrained(folder, safe_serialization=True)
        ids = [fast.encode(s, add_special_tokens=False) for s in SENTENCES]
        np.savez_compressed(FIXTURES / f"{name}_reference.npz", **reference(model, ids))


T5_SENTENCES = ["Hello world!", "The lazy fox reads tokens.", "Numbers like 42 are split."]
T5_TARGETS = ["A tiny model.", "Hello again, world."]


def train_t5_sentencepiece(path: Path) -> None:
    """A small unigram SentencePiece model in T5's layout: pad 0, eos 1, unk 2, no bos."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=str(path.with_suffix("")),
        vocab_size=90,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        # No NFKC table: it alone would take 240 KB of the fixture.
        normalization_rule_name="identity",
        minloglevel=2,
    )
    path.with_suffix(".vocab").unlink()


def make_t5() -> None:
    """Tiny `T5ForConditionalGeneration`s: v1.0 (ReLU, tied, logits rescaled) and v1.1
    (gated GELU, untied), both with 2+2 layers, relative position buckets and no extra ids."""
    variants = {
        "hf_t5": dict(feed_forward_proj="relu", tie_word_embeddings=True),
        "hf_t5_v1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    }
    for name, options in variants.items():
        folder = fresh(FIXTURES / name)
        train_t5_sentencepiece(folder / "spiece.model")
        # T5's slow tokenizer is SentencePiece itself plus a final </s> (transformers 5 would
        # convert the model to a `tokenizers` Unigram, which needs protobuf to read it).
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))

        def encode(text: str, processor=processor) -> list[int]:
            return processor.encode(text) + [processor.eos_id()]

        config = transformers.T5Config(
            vocab_size=processor.get_piece_size(),
            d_model=32,
            d_kv=8,
            d_ff=48,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=20,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
            **options,
        )
        torch.manual_seed(SEED)
        model = transformers.T5ForConditionalGeneration(config)
        randomize(model)
        untied = not options["tie_word_embeddings"]
        if untied:
            # transformers 5 always ties T5's lm_head (tie_word_embeddings=false only drops the
            # output rescaling); published v1.1 checkpoints have their own lm_head.weight.
            head = torch.randn(config.vocab_size, config.d_model, generator=GENERATOR) * 0.2
            model.lm_head.weight = torch.nn.Parameter(head)
        model.save_pretrained(folder, safe_serialization=True)
        if untied:
            # Written the way transformers 4 saved v1.1 models: lm_head.weight in the file,
            # tie_word_embeddings false in config.json.
            from safetensors.torch import load_file, save_file

            tensors = load_file(folder / "model.safetensors")
            tensors["lm_head.weight"] = head.contiguous()
            save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
            config_path = folder / "config.json"
            saved = json.loads(config_path.read_text())
            saved.pop("scale_decoder_outputs", None)
            saved["tie_word_embeddings"] = False
            config_path.write_text(json.dumps(saved, indent=2, sort_keys=True))
        model.eval()
        out = {"sentences": np.array(T5_SENTENCES), "targets": np.array(T5_TARGETS)}
        with torch.no_grad():
            for i, text in enumerate(T5_SENTENCES):
                source = encode(text)  # ends with </s>
                target = [0] + encode(T5_TARGETS[i % len(T5_TARGETS)])
                out[f"ids_{i}"] = np.array(source, np.int32)
                out[f"decoder_ids_{i}"] = np.array(target, np.int32)
                logits = model(
                    input_ids=torch.tensor([source]), decoder_input_ids=torch.tensor([target])
                ).logits
                out[f"logits_{i}"] = logits[0].numpy().astype(np.float32)
                generated = [0]
                for _ in range(GREEDY_STEPS):
                    step = model(
                        input_ids=torch.tensor([source]),
                        decoder_input_ids=torch.tensor([generated]),
                    ).logits
                    generated.append(int(step[0, -1].argmax()))
                out[f"greedy_{i}"] = np.array(generated[1:], np.int32)
        np.savez_compressed(FIXTURES / f"{name}_reference.npz", **out)


SENTINEL_TEXTS = [
    "Thank you <extra_id_0> me to your party <extra_id_1> week.",
    "<extra_id_0> for inviting<extra_id_1>last <extra_id_99>",
    "The lazy fox reads tokens.",
]


def make_t5_sentinels() -> None:
    """`hf_t5_sentinels/`: the T5 fixture's `spiece.model` with the published checkpoints'
    tokenizer layout (100 `<extra_id_*>` after the pieces, in reverse, as transformers 4
    converted t5-small's tokenizer.json; `vocab_size` padded past them), saved by transformers'
    `T5Tokenizer`; `hf_t5_sentinels_reference.json` holds its ids of every sentinel and of
    `SENTINEL_TEXTS` (without the final `</s>`)."""
    import sentencepiece as spm

    folder = fresh(FIXTURES / "hf_t5_sentinels")
    shutil.copy(FIXTURES / "hf_t5" / "spiece.model", folder / "spiece.model")
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    extras = [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)]
    tokenizer = transformers.T5Tokenizer(vocab=pieces + extras, extra_ids=100)
    tokenizer.save_pretrained(folder)
    config = json.loads((FIXTURES / "hf_t5" / "config.json").read_text())
    config["vocab_size"] = len(pieces) + len(extras) + 6  # 6 ids no token uses, as T5's 28
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    reference = {
        "sentinel_ids": [tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(100)],
        "texts": SENTINEL_TEXTS,
        "ids": [tokenizer.encode(t, add_special_tokens=False) for t in SENTINEL_TEXTS],
        "tokens": [
            tokenizer.convert_ids_to_tokens(tokenizer.encode(t, add_special_tokens=False))
            for t in SENTINEL_TEXTS
        ],
    }
    (FIXTURES / "hf_t5_sentinels_reference.json").write_text(
        json.dumps(reference, indent=1, ensure_ascii=False)
    )


def make_llama_sentencepiece() -> None:
    """`hf_llama_spm/`: a Llama 1/2-style checkpoint whose tokenizer is only a SentencePiece
    `tokenizer.model` (BPE, byte fallback, unk 0, bos 1, eos 2, dummy prefix, no tokenizer.json)
    and a tiny untied `LlamaForCausalLM`. Its reference holds transformers' ids (`ids_<i>`,
    `AutoTokenizer` -> `LlamaTokenizer`, no special tokens), SentencePiece's own (`spm_ids_<i>`,
    what the slow tokenizer returned), and logits / greedy tokens on transformers' ids."""
    import sentencepiece as spm

    folder = fresh(FIXTURES / "hf_llama_spm")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=360,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        character_coverage=1.0,
        minloglevel=2,
    )
    (folder / "tokenizer.vocab").unlink()
    tokenizer_config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    fast = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=processor.get_piece_size(),
        hidden_size=16,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(SEED)
    model = transformers.LlamaForCausalLM(config)
    randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    ids = [fast.encode(s, add_special_tokens=False) for s in SENTENCES]
    out = reference(model, ids)
    for i, text in enumerate(SENTENCES):
        out[f"spm_ids_{i}"] = np.array(processor.encode(text), np.int32)
    out["tokenizer_class"] = np.array(type(fast).__name__)
    np.savez_compressed(FIXTURES / "hf_llama_spm_reference.npz", **out)


def make_bart() -> None:
    """`hf_bart/`: a tiny `BartForConditionalGeneration` (2+2 layers, d=32, post-norm, learned
    positions with BART's offset of 2, `layernorm_embedding`, GELU, biases, tied embeddings)
    with a byte-level BPE in BART's layout (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3, `<mask>`
    last); its reference holds, per sentence, `ids_<i>` (the tokenizer's ids, no special
    tokens), `source_<i>` (`<s> ids </s>`), `decoder_ids_<i>` (`</s> <s> target`), the decoder
    `logits_<i>` and 8 greedy decoder tokens `greedy_<i>` (from `</s>`)."""
    trained = train_byte_bpe(320, ["<s>", "<pad>", "</s>", "<unk>"])
    spec = json.loads(trained.to_str())
    vocab = dict(spec["model"]["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    folder = fresh(FIXTURES / "hf_bart")
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))
    # transformers 5 reads BART's vocab.json + merges.txt with RobertaTokenizer.
    tokenizer = transformers.RobertaTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt")
    )
    tokenizer.save_pretrained(folder)
    config = transformers.BartConfig(
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=48,
        decoder_ffn_dim=48,
        max_position_embeddings=64,
        activation_function="gelu",
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=None,
    )
    torch.manual_seed(SEED)
    model = transformers.BartForConditionalGeneration(config)
    randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    model.eval()
    out = {"sentences": np.array(SENTENCES), "targets": np.array(T5_TARGETS)}
    with torch.no_grad():
        for i, text in enumerate(SENTENCES):
            ids = tokenizer.encode(text, add_special_tokens=False)
            target = tokenizer.encode(T5_TARGETS[i % len(T5_TARGETS)], add_special_tokens=False)
            source = [0, *ids, 2]
            decoder = [2, 0, *target]
            out[f"ids_{i}"] = np.array(ids, np.int32)
            out[f"source_{i}"] = np.array(source, np.int32)
            out[f"decoder_ids_{i}"] = np.array(decoder, np.int32)
            logits = model(
                input_ids=torch.tensor([source]), decoder_input_ids=torch.tensor([decoder])
            ).logits
            out[f"logits_{i}"] = logits[0].numpy().astype(np.float32)
            generated = [2]
            for _ in range(GREEDY_STEPS):
                step = model(
                    input_ids=torch.tensor([source]), decoder_input_ids=torch.tensor([generated])
                ).logits
                generated.append(int(step[0, -1].argmax()))
            out[f"greedy_{i}"] = np.array(generated[1:], np.int32)
    np.savez_compressed(FIXTURES / "hf_bart_reference.npz", **out)


def make_qwen2() -> None:
    """`hf_qwen2/`: a tiny `Qwen2ForCausalLM` (Qwen2-0.5B's layout: biases on q/k/v only, tied
    embeddings, GQA) with `hf_llama/`'s byte-level BPE tokenizer files (Qwen2's tokenizer is a
    byte-level BPE `tokenizer.json` too; run `make_llama` first) and Qwen2's specials: no
    bos token, `<|endoftext|>` as eos and pad."""
    source = FIXTURES / "hf_llama"
    folder = fresh(FIXTURES / "hf_qwen2")
    shutil.copy(source / "tokenizer.json", folder / "tokenizer.json")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.save_pretrained(folder)
    config = transformers.Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        # As published Qwen2 configs: a window that is switched off.
        use_sliding_window=False,
        sliding_window=32,
        max_window_layers=1,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(SEED)
    model = transformers.Qwen2ForCausalLM(config)
    randomize(model)
    model.tie_weights()
    model.save_pretrained(folder, safe_serialization=True)
    ids = [fast.encode(s, add_special_tokens=False) for s in SENTENCES]
    np.savez_compressed(FIXTURES / "hf_qwen2_reference.npz", **reference(model, ids))


def check_export(folder: str, name: str) -> None:
    """Loads a `save_llama_checkpoint` / `save_gpt2_checkpoint` folder with transformers and
    compares its logits with the fixture `name`'s reference (the folder must be an export of
    that fixture, in Hugging Face's ids: `swap=hf_id_swap(fixture)`)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with np.load(FIXTURES / f"{name}_reference.npz") as ref:
        worst = 0.0
        with torch.no_grad():
            for i in range(len(ref["sentences"])):
                logits = model(torch.tensor([ref[f"ids_{i}"].tolist()])).logits[0].numpy()
                worst = max(worst, float(np.abs(logits - ref[f"logits_{i}"]).max()))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    print(
        f"{folder}: transformers {transformers.__version__} loads it; max |logits - {name}| "
        f"= {worst:.2e}; tokenizer {type(tokenizer).__name__}"
    )
    assert worst < 1e-5, worst


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--check-export":
        check_export(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--only":
        globals()[f"make_{sys.argv[2]}"]()
        print("wrote the", sys.argv[2], "fixture")
        return
    make_gpt2()
    make_llama()
    make_t5()
    make_t5_sentinels()
    make_llama_sentencepiece()
    make_bart()
    make_qwen2()
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "tokenizers")}
    print("wrote fixtures with", versions)
    for path in sorted(FIXTURES.glob("hf_*")):
        size = (
            sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
        )
        print(f"{path.relative_to(REPO)}: {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
