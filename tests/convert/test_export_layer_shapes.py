"""Structurally pruned models (`layer_shapes`) exported back to Hugging Face.

Hugging Face configs hold one head count and one feed-forward width for all layers: a model
pruned alike in every layer exports with the pruned shape (and reloads computing the same
logits); one whose blocks differ, or whose pruned heads no longer span the width where the
family needs it (GPT-2, BERT), is refused with an error naming `layer_shapes`.
"""

import json

import numpy as np
import pytest
from hf_parity import FIXTURES

from kerasllm import zoo
from kerasllm.compression.pruning import plan, prune_structured
from kerasllm.convert import load_bert_checkpoint, save_bert_checkpoint
from kerasllm.convert.bert import hf_config_from_encoder
from kerasllm.convert.gpt2 import save_gpt2_checkpoint
from kerasllm.convert.hf_decoder import hf_id_swap, load_hf_checkpoint
from kerasllm.convert.llama import save_llama_checkpoint
from kerasllm.models import CausalLM

IDS = np.array([[5, 17, 42, 8, 99, 3], [7, 7, 250, 1, 2, 0]], "int32")
INPUTS = {"token_ids": IDS, "padding_mask": np.array([[1] * 6, [1] * 5 + [0]], "int32")}


def imported(name):
    decoder, _ = load_hf_checkpoint(FIXTURES / name)
    return CausalLM(decoder)


@pytest.mark.parametrize("name", ["hf_llama", "hf_qwen2"])
def test_a_llama_pruned_alike_in_every_layer_exports_the_pruned_shape(tmp_path, name):
    source = FIXTURES / name
    original = json.loads((source / "config.json").read_text())
    # 4 query heads in 2 key/value groups: each group keeps 1 of its 2 query heads.
    smaller = prune_structured(imported(name), heads_fraction=0.5, ffn_fraction=0.25)
    folder = save_llama_checkpoint(
        smaller, tmp_path / name, swap=hf_id_swap(source), tokenizer_from=source
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == original["model_type"]
    assert config["num_attention_heads"] == 2
    assert config["num_key_value_heads"] == 2
    assert config["head_dim"] == 8  # unchanged: 2 heads x 8 < hidden_size 32
    assert config["intermediate_size"] == original["intermediate_size"] * 3 // 4
    reloaded, _ = load_hf_checkpoint(folder)
    assert reloaded.layer_shapes is None  # a plain model of the pruned shape
    np.testing.assert_allclose(
        np.asarray(CausalLM(reloaded)(INPUTS)), np.asarray(smaller(INPUTS)), atol=1e-5
    )


def test_blocks_of_different_shapes_are_refused_naming_layer_shapes(tmp_path):
    model = imported("hf_llama")
    keep = plan(model, heads_fraction=0.5, ffn_fraction=0.25)
    keep[1]["feed_forward"] = list(range(64))  # block 1 keeps all its units
    smaller = prune_structured(model, keep=keep)
    with pytest.raises(ValueError, match=r"`layer_shapes`.*intermediate_dim per block: \[48, 64\]"):
        save_llama_checkpoint(smaller, tmp_path / "llama")
    assert not (tmp_path / "llama" / "config.json").exists()


def test_gpt2_exports_feed_forward_pruning_and_refuses_pruned_heads(tmp_path):
    source = FIXTURES / "hf_gpt2"
    swap = hf_id_swap(source)
    smaller = prune_structured(imported("hf_gpt2"), heads_fraction=0.0, ffn_fraction=0.25)
    folder = save_gpt2_checkpoint(smaller, tmp_path / "gpt2", swap=swap, tokenizer_from=source)
    config = json.loads((folder / "config.json").read_text())
    assert (config["n_head"], config["n_inner"]) == (4, 96)  # of 4 x 32 units
    reloaded, _ = load_hf_checkpoint(folder)
    np.testing.assert_allclose(
        np.asarray(CausalLM(reloaded)(INPUTS)), np.asarray(smaller(INPUTS)), atol=1e-5
    )
    fewer_heads = prune_structured(imported("hf_gpt2"), heads_fraction=0.5, ffn_fraction=0.0)
    with pytest.raises(ValueError, match=r"`layer_shapes`.*heads_fraction=0"):
        save_gpt2_checkpoint(fewer_heads, tmp_path / "heads", swap=swap)


def test_bert_exports_feed_forward_pruning_and_refuses_pruned_heads(tmp_path):
    model = zoo.get("bert_tiny", task="classifier", num_classes=2, weights=None)
    smaller = prune_structured(model, heads_fraction=0.0, ffn_fraction=0.25)
    encoder = smaller.backbone
    assert hf_config_from_encoder(encoder)["intermediate_size"] == encoder.intermediate_dim * 3 // 4
    folder = save_bert_checkpoint(encoder, tmp_path / "bert")
    reloaded = load_bert_checkpoint(folder)
    inputs = {
        "token_ids": IDS,
        "padding_mask": INPUTS["padding_mask"],
        "segment_ids": np.zeros_like(IDS),
    }
    np.testing.assert_allclose(
        np.asarray(reloaded(inputs)["sequence_output"]),
        np.asarray(encoder(inputs)["sequence_output"]),
        atol=1e-5,
    )
    fewer_heads = prune_structured(model, heads_fraction=0.5, ffn_fraction=0.0)
    with pytest.raises(ValueError, match=r"`layer_shapes`.*heads_fraction=0"):
        hf_config_from_encoder(fewer_heads.backbone)
