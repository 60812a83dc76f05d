"""Qwen2 import and export: parity with Hugging Face transformers on a tiny random checkpoint.

`tests/fixtures/hf_qwen2/` is a randomly initialised `Qwen2ForCausalLM` (4 heads, 2 key/value
heads, biases on the query/key/value projections only, tied embeddings, `rope_theta` 1e6) with
the Llama fixture's byte-level BPE `tokenizer.json` (id 0 is `<|endoftext|>`, Qwen2's end and
pad token). Written by `scripts/make_hf_reference.py --only qwen2`.
"""

import json

import numpy as np
import pytest
from hf_parity import FIXTURES, check_greedy, check_logits, check_token_ids, reference

from kerasllm import zoo
from kerasllm.convert import CheckpointMismatchError, read_checkpoint_tensors
from kerasllm.convert.llama import (
    decoder_config_from_llama,
    hf_config_from_llama_decoder,
    llama_state_dict,
    load_llama_weights,
    save_llama_checkpoint,
)
from kerasllm.models import CausalLM, Decoder

CHECKPOINT = FIXTURES / "hf_qwen2"
REFERENCE = reference("hf_qwen2")
CONFIG = json.loads((CHECKPOINT / "config.json").read_text())


@pytest.fixture(scope="module")
def model():
    return zoo.get(CHECKPOINT)


def test_fixture_is_small():
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 200 * 1024


def test_config_maps_to_query_key_value_biases_only(model):
    backbone = model.backbone
    assert (backbone.use_bias, backbone.qkv_bias, backbone.tie_embeddings) == (False, True, True)
    assert backbone.rotary_max_wavelength == 1e6
    attention = backbone.blocks[0].self_attention
    for dense in (attention.query_dense, attention.key_dense, attention.value_dense):
        assert dense.bias is not None
    assert attention.output_dense.bias is None
    assert backbone.blocks[0].feed_forward.gate_dense.bias is None
    assert model.preprocessor.tokenizer.end_id == 0


def test_logits_match_transformers(model):
    check_logits(model, REFERENCE)


def test_token_ids_match_transformers(model):
    check_token_ids(model.preprocessor.tokenizer, REFERENCE)


def test_greedy_generation_matches_transformers(model):
    check_greedy(model, REFERENCE)


def test_untied_qwen2_maps_its_lm_head():
    config = decoder_config_from_llama({**CONFIG, "tie_word_embeddings": False})
    decoder = Decoder(**config)
    tensors = read_checkpoint_tensors(CHECKPOINT)
    shape = tensors["model.embed_tokens.weight"].shape
    head = np.random.default_rng(0).normal(size=shape).astype("float32")
    load_llama_weights(decoder, {**tensors, "lm_head.weight": head})
    np.testing.assert_array_equal(np.asarray(decoder.token_embedding.reverse_embeddings).T, head)


def test_a_missing_query_bias_loads_nothing():
    decoder = Decoder(**decoder_config_from_llama(CONFIG))
    tensors = read_checkpoint_tensors(CHECKPOINT)
    del tensors["model.layers.1.self_attn.q_proj.bias"]
    with pytest.raises(CheckpointMismatchError, match=r"layers\.1\.self_attn\.q_proj\.bias"):
        load_llama_weights(decoder, tensors)


@pytest.mark.parametrize(
    "changes, key",
    [
        (
            {"layer_types": ["full_attention", "sliding_attention"], "sliding_window": 16},
            "layer_types",
        ),
        (
            {"layer_types": None, "use_sliding_window": True, "sliding_window": 16},
            "use_sliding_window",
        ),
    ],
)
def test_an_active_sliding_window_is_refused_by_name(changes, key):
    with pytest.raises(ValueError, match=f"config.json sets {key}=.*sliding_window=16"):
        decoder_config_from_llama({**CONFIG, **changes})


def test_a_switched_off_or_unreached_window_maps():
    legacy = {k: v for k, v in CONFIG.items() if k != "layer_types"}
    # Published Qwen2 configs: a window that use_sliding_window leaves off.
    off = {**legacy, "use_sliding_window": False, "sliding_window": 16}
    assert decoder_config_from_llama(off)["qkv_bias"]
    # On, but only from layer max_window_layers=2 on, which a 2-layer model never reaches.
    unreached = {**off, "use_sliding_window": True, "max_window_layers": 2}
    assert decoder_config_from_llama(unreached)["num_layers"] == 2


def test_export_writes_a_qwen2_checkpoint_that_reimports(model, tmp_path):
    config = hf_config_from_llama_decoder(model.backbone)
    assert (config["model_type"], config["architectures"]) == ("qwen2", ["Qwen2ForCausalLM"])
    assert not config["use_sliding_window"] and "attention_bias" not in config
    exported = llama_state_dict(model.backbone)
    original = read_checkpoint_tensors(CHECKPOINT)
    assert set(exported) == set(original)
    for name, value in original.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    folder = save_llama_checkpoint(model, tmp_path / "out", tokenizer_from=CHECKPOINT)
    check_logits(CausalLM(zoo.get(folder).backbone), REFERENCE)
