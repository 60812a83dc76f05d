"""Presets at the published shapes of the Hugging Face families kerasllm converts.

Parameter counts are affine in the number of layers and in the vocabulary size, so each preset's
exact count is extrapolated from small builds of the same config (one and two layers, two small
vocabularies): no billion-parameter model is allocated, and a wrong config still gives a wrong
count. `llama_tiny` is also built whole.
"""

import json

import numpy as np
import pytest
from hf_parity import FIXTURES

from kerasllm import zoo
from kerasllm.convert.gpt2 import decoder_config_from_gpt2
from kerasllm.convert.llama import decoder_config_from_llama
from kerasllm.convert.t5 import encoder_decoder_config_from_t5
from kerasllm.testing import decoder_inputs

# Published parameter counts (Hugging Face `num_parameters()` of the reference checkpoints).
PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2_medium": 354_823_168,
    "smollm_135m": 134_515_008,
    "tinyllama_1b": 1_100_048_384,
    "llama_tiny": 217_408,
    "t5_base": 222_903_552,
    "t5_v1_1_small": 76_961_152,
    "t5_v1_1_base": 247_577_856,
}
LARGE = {"gpt2_medium", "tinyllama_1b", "t5_base", "t5_v1_1_base"}


def extrapolated_params(name: str) -> int:
    """The preset's parameter count from builds with 1-2 layers and vocabularies of 8 and 16."""
    preset = zoo.get_preset(name)

    def count(layers, vocabulary):
        return zoo.get(
            name, weights=None, num_layers=layers, vocabulary_size=vocabulary
        ).count_params()

    base = count(1, 8)
    per_layer = count(2, 8) - base
    per_token = (count(1, 16) - base) // 8
    config = preset.config
    return (
        base + per_layer * (config["num_layers"] - 1) + per_token * (config["vocabulary_size"] - 8)
    )


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in PUBLISHED],
)
def test_parameter_counts_equal_the_published_figures(name):
    assert zoo.get_preset(name).num_params == PUBLISHED[name]
    assert extrapolated_params(name) == PUBLISHED[name]


def test_llama_tiny_builds_whole_and_runs():
    model = zoo.get("llama_tiny", weights=None, task="causal_lm")
    assert model.backbone.count_params() == PUBLISHED["llama_tiny"]
    logits = model(decoder_inputs(batch=2, length=5, vocabulary_size=50))
    assert logits.shape == (2, 5, 1024) and np.isfinite(np.asarray(logits)).all()


def test_presets_are_what_the_converters_build():
    """A checkpoint config at a preset's shape converts to that preset's config."""
    gpt2 = json.loads((FIXTURES / "hf_gpt2" / "config.json").read_text())
    gpt2.update(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)
    converted = decoder_config_from_gpt2(gpt2)
    preset = zoo.get_preset("gpt2").config
    assert {k: converted[k] for k in preset} == preset
    llama = json.loads((FIXTURES / "hf_llama_tied" / "config.json").read_text())
    llama.update(
        vocab_size=49152,
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        intermediate_size=1536,
        max_position_embeddings=2048,
    )
    converted = decoder_config_from_llama(llama)
    preset = zoo.get_preset("smollm_135m").config
    assert {k: converted[k] for k in preset} == preset


def test_t5_presets_are_what_the_converter_builds():
    t5 = json.loads((FIXTURES / "hf_t5_v1_1" / "config.json").read_text())
    t5.update(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6)
    t5.update(relative_attention_num_buckets=32, relative_attention_max_distance=128)
    t5.pop("num_decoder_layers")
    converted = encoder_decoder_config_from_t5(t5)
    preset = zoo.get_preset("t5_v1_1_small").config
    assert {k: converted[k] for k in preset} == preset
