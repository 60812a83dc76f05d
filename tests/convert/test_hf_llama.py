"""Llama-family import: parity with Hugging Face transformers on tiny random checkpoints.

`tests/fixtures/hf_llama/` is a randomly initialised `LlamaForCausalLM` with grouped-query
attention (4 heads, 2 key/value heads), `rope_theta` 500000 and an untied output matrix;
`hf_llama_tied/` has one key/value head, tied embeddings (SmolLM's layout, where no T5-style
logit rescaling may apply) and Llama 3's rope scaling. Both use a byte-level BPE
`tokenizer.json` whose id 0 is `<|endoftext|>` (the end token), so kerasllm's ids equal Hugging
Face's. Written by `scripts/make_hf_reference.py`.
"""

import json
import shutil

import numpy as np
import pytest
from hf_parity import FIXTURES, check_greedy, check_logits, check_token_ids, reference

from kerasllm import zoo
from kerasllm.convert import CheckpointMismatchError, read_checkpoint_tensors
from kerasllm.convert.hf_decoder import hf_id_swap, load_hf_checkpoint
from kerasllm.convert.llama import decoder_config_from_llama, load_llama_weights
from kerasllm.models import CausalLM, Decoder

CHECKPOINT = FIXTURES / "hf_llama"
TIED = FIXTURES / "hf_llama_tied"
REFERENCE = reference("hf_llama")
CONFIG = json.loads((CHECKPOINT / "config.json").read_text())


@pytest.fixture(scope="module")
def model():
    return zoo.get(CHECKPOINT)


def test_fixtures_are_small():
    for folder in (CHECKPOINT, TIED):
        assert sum(f.stat().st_size for f in folder.iterdir()) < 300 * 1024


def test_config_maps_to_a_rotary_gqa_swiglu_decoder(model):
    assert isinstance(model, CausalLM) and model.preset_weights == str(CHECKPOINT)
    backbone = model.backbone
    assert (backbone.num_heads, backbone.num_key_value_heads, backbone.head_dim) == (4, 2, 8)
    assert backbone.position_embedding == "rotary"
    assert backbone.rotary_max_wavelength == 500000.0
    assert (backbone.activation, backbone.norm_type, backbone.use_bias) == ("swiglu", "rms", False)
    assert not backbone.tie_embeddings
    assert hf_id_swap(CHECKPOINT) == 0
    tokenizer = model.preprocessor.tokenizer
    assert tokenizer.pad_id == tokenizer.end_id == 0


def test_logits_match_transformers(model):
    check_logits(model, REFERENCE)


def test_tied_embeddings_logits_match_transformers():
    decoder, _ = load_hf_checkpoint(TIED)
    assert decoder.tie_embeddings and decoder.num_key_value_heads == 1
    assert decoder.rotary_scaling["rope_type"] == "llama3"
    assert decoder.token_embedding.logit_scale is None
    check_logits(CausalLM(decoder), reference("hf_llama_tied"))


def test_token_ids_match_transformers(model):
    check_token_ids(model.preprocessor.tokenizer, REFERENCE)


def test_greedy_generation_matches_transformers(model):
    check_greedy(model, REFERENCE)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "rope_parameters.rope_type"),
        ({"rope_parameters": None, "rope_scaling": {"type": "dynamic"}}, "rope_scaling"),
        ({"rope_parameters": None, "rope_scaling": {"rope_type": "llama3"}}, "rope_scaling"),
        ({"model_type": "mistral", "sliding_window": 16}, "sliding_window"),
        (
            {"model_type": "qwen2", "layer_types": ["sliding_attention"], "sliding_window": 8},
            "layer_types",
        ),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"attention_bias": True}, "attention_bias"),
    ],
)
def test_unmappable_config_keys_are_refused_by_name(changes, key):
    with pytest.raises(ValueError, match=f"config.json sets {key}="):
        decoder_config_from_llama({**CONFIG, **changes})


def test_mistral_and_transformers_4_configs_map():
    legacy = {k: v for k, v in CONFIG.items() if k != "rope_parameters"}
    config = decoder_config_from_llama({**legacy, "rope_theta": 1e6, "model_type": "mistral"})
    assert config["rotary_max_wavelength"] == 1e6
    with_window = {**legacy, "model_type": "mistral", "sliding_window": 64}
    assert decoder_config_from_llama(with_window)["max_sequence_length"] == 64
    linear = {**legacy, "rope_scaling": {"type": "linear", "factor": 2.0}}
    assert decoder_config_from_llama(linear)["rotary_scaling"] == {
        "rope_type": "linear",
        "factor": 2.0,
    }


def test_unsupported_model_type_and_tokenizer_are_refused(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(CHECKPOINT, folder)
    (folder / "config.json").write_text(json.dumps({**CONFIG, "model_type": "falcon"}))
    with pytest.raises(ValueError, match="model_type='falcon'"):
        zoo.get(folder)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFC"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="config.json sets normalizer="):
        zoo.get_tokenizer(folder)


def test_mismatched_tensors_load_nothing():
    decoder = Decoder(**decoder_config_from_llama(CONFIG))
    before = [w.copy() for w in decoder.get_weights()]
    tensors = read_checkpoint_tensors(CHECKPOINT)
    missing = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
    with pytest.raises(CheckpointMismatchError, match="lm_head.weight"):
        load_llama_weights(decoder, missing)
    wrong = {**tensors, "model.layers.0.self_attn.k_proj.weight": np.zeros((32, 32), "float32")}
    with pytest.raises(CheckpointMismatchError, match="k_proj"):
        load_llama_weights(decoder, wrong)
    assert all((a == b).all() for a, b in zip(decoder.get_weights(), before))
