"""GPT-2 import: parity with Hugging Face transformers on a tiny random checkpoint.

`tests/fixtures/hf_gpt2/` is a randomly initialised `GPT2LMHeadModel` (every weight random,
biases and LayerNorms included) with a GPT-2-layout byte-level BPE, written by
`scripts/make_hf_reference.py`; the reference logits, ids and greedy continuations come from
transformers.
"""

import json
import shutil

import numpy as np
import pytest
from hf_parity import FIXTURES, check_greedy, check_logits, check_token_ids, reference

from kerasllm import zoo
from kerasllm.convert import CheckpointMismatchError, read_checkpoint_tensors, write_safetensors
from kerasllm.convert.gpt2 import decoder_config_from_gpt2, load_gpt2_weights
from kerasllm.convert.hf_decoder import hf_id_swap
from kerasllm.models import CausalLM, Decoder

CHECKPOINT = FIXTURES / "hf_gpt2"
# kerasllm pads with id 0: GPT-2's "!" (0) and "<|endoftext|>" (319) trade places.
SWAP = 319
REFERENCE = reference("hf_gpt2", SWAP)


@pytest.fixture(scope="module")
def model():
    return zoo.get(CHECKPOINT)


def test_fixture_is_small():
    size = sum(f.stat().st_size for f in CHECKPOINT.iterdir())
    assert size < 300 * 1024
    assert len(REFERENCE["sentences"]) == 4


def test_zoo_get_builds_the_causal_lm_with_weights_and_tokenizer(model):
    assert isinstance(model, CausalLM)
    assert model.preset_weights == str(CHECKPOINT)
    backbone = model.backbone
    assert (backbone.num_layers, backbone.hidden_dim, backbone.num_heads) == (2, 32, 4)
    assert backbone.activation == "gelu_approximate" and backbone.tie_embeddings
    tokenizer = model.preprocessor.tokenizer
    assert hf_id_swap(CHECKPOINT) == SWAP
    assert tokenizer.pad_id == tokenizer.end_id == 0
    assert tokenizer.id_to_token(0) == "<|endoftext|>" and tokenizer.id_to_token(SWAP) == "!"


def test_logits_match_transformers(model):
    check_logits(model, REFERENCE)


def test_token_ids_match_transformers(model):
    check_token_ids(model.preprocessor.tokenizer, REFERENCE)
    vocab = json.loads((CHECKPOINT / "vocab.json").read_text("utf-8"))
    assert vocab["!"] == 0 and vocab["<|endoftext|>"] == SWAP
    tokenizer = model.preprocessor.tokenizer
    assert tokenizer.tokenize("Hello world!").numpy().tolist() == [
        vocab["Hello"],
        vocab["Ġworld"],
        SWAP,
    ]
    assert tokenizer.detokenize([vocab["Hello"], SWAP, 0, 0]).numpy().decode() == "Hello!"


def test_greedy_generation_matches_transformers(model):
    check_greedy(model, REFERENCE)


@pytest.mark.slow
def test_text_generation_through_the_preprocessor(model):
    text = model.generate("Hello world", max_new_tokens=4, stop_token_ids=None)
    assert isinstance(text, str) and text.startswith("Hello world")


def test_weights_none_builds_random_weights_and_task_overrides():
    random = zoo.get(
        CHECKPOINT, weights=None, task="classifier", num_classes=3, attention_dropout=0.0
    )
    assert random.preset_weights is None and random.backbone.attention_dropout == 0.0
    with pytest.raises(ValueError, match="Unknown override 'num_layer'"):
        zoo.get(CHECKPOINT, num_layer=1)


@pytest.mark.parametrize(
    "key, value",
    [
        ("scale_attn_by_inverse_layer_idx", True),
        ("add_cross_attention", True),
        ("activation_function", "quick_gelu"),
    ],
)
def test_unmappable_config_keys_are_refused_by_name(key, value):
    config = json.loads((CHECKPOINT / "config.json").read_text())
    with pytest.raises(ValueError, match=key):
        decoder_config_from_gpt2({**config, key: value})


def test_missing_or_extra_tensors_load_nothing():
    config = decoder_config_from_gpt2(json.loads((CHECKPOINT / "config.json").read_text()))
    decoder = Decoder(**config)
    before = [w.copy() for w in decoder.get_weights()]
    tensors = read_checkpoint_tensors(CHECKPOINT)
    missing = {k: v for k, v in tensors.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    with pytest.raises(CheckpointMismatchError, match="h.1.mlp.c_fc.bias"):
        load_gpt2_weights(decoder, missing)
    with pytest.raises(CheckpointMismatchError, match="h.2.ln_1.weight"):
        load_gpt2_weights(decoder, {**tensors, "h.2.ln_1.weight": np.ones(32, "float32")})
    untied = {**tensors, "lm_head.weight": tensors["transformer.wte.weight"] + 1}
    with pytest.raises(CheckpointMismatchError, match="tie_word_embeddings"):
        load_gpt2_weights(decoder, untied)
    assert all((a == b).all() for a, b in zip(decoder.get_weights(), before))


def test_sharded_checkpoint_with_legacy_buffers_loads(tmp_path, model):
    folder = tmp_path / "gpt2"
    shutil.copytree(CHECKPOINT, folder)
    (folder / "model.safetensors").unlink()
    # An old-style `GPT2Model` checkpoint: no "transformer." prefix, attention-mask buffers.
    tensors = {
        k.removeprefix("transformer."): v for k, v in read_checkpoint_tensors(CHECKPOINT).items()
    }
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), "float32"))
    names = sorted(tensors)
    shards = {
        "model-1.safetensors": names[: len(names) // 2],
        "model-2.safetensors": names[len(names) // 2 :],
    }
    weight_map = {}
    for shard, keys in shards.items():
        write_safetensors({k: tensors[k] for k in keys}, folder / shard)
        weight_map.update(dict.fromkeys(keys, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = zoo.get(folder)
    ids = REFERENCE["ids_1"][None]
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    np.testing.assert_array_equal(np.asarray(sharded(inputs)), np.asarray(model(inputs)))
