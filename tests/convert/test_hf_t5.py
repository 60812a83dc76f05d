"""T5 import (v1.0 and v1.1): parity with Hugging Face transformers on tiny random checkpoints.

`tests/fixtures/hf_t5/` is a `T5ForConditionalGeneration` in the v1.0 layout (ReLU, tied
embeddings, decoder output rescaled by d_model ** -0.5); `hf_t5_v1_1/` is v1.1 (gated GELU, a
separate `lm_head.weight`, `tie_word_embeddings: false`, as transformers 4 saved it). Both: 2+2
layers, d=32, 4 heads of 8, 8 relative buckets up to distance 20, every weight random, and a
unigram `spiece.model` (pad 0, eos 1, unk 2). Written by `scripts/make_hf_reference.py`.
"""

import json

import numpy as np
import pytest
from hf_parity import FIXTURES, TOLERANCE, reference

from kerasllm import zoo
from kerasllm.convert import CheckpointMismatchError, read_checkpoint_tensors
from kerasllm.convert.t5 import encoder_decoder_config_from_t5, load_t5_weights
from kerasllm.generation import generate
from kerasllm.models import EncoderDecoder, Seq2SeqLM

VARIANTS = ("hf_t5", "hf_t5_v1_1")


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request):
    model = zoo.get(FIXTURES / request.param)
    return request.param, model, reference(request.param)


def _inputs(ref, i):
    source, target = ref[f"ids_{i}"], ref[f"decoder_ids_{i}"]
    return {
        "encoder_token_ids": source[None],
        "encoder_padding_mask": np.ones((1, len(source)), "int32"),
        "decoder_token_ids": target[None],
        "decoder_padding_mask": np.ones((1, len(target)), "int32"),
    }


def test_fixtures_are_small():
    for name in VARIANTS:
        assert sum(f.stat().st_size for f in (FIXTURES / name).iterdir()) < 300 * 1024


def test_config_maps_to_the_t5_layout(variant):
    name, model, _ = variant
    assert isinstance(model, Seq2SeqLM) and model.preset_weights == str(FIXTURES / name)
    backbone = model.backbone
    assert backbone.position_embedding == "relative" and backbone.attention_scale == 1.0
    assert (backbone.relative_num_buckets, backbone.relative_max_distance) == (8, 20)
    if name == "hf_t5":
        assert backbone.activation == "relu" and backbone.tie_embeddings
        assert backbone.token_embedding.logit_scale == pytest.approx(32**-0.5)
    else:
        assert backbone.activation == "geglu" and not backbone.tie_embeddings
    tokenizer = model.preprocessor.tokenizer
    assert (tokenizer.pad_id, tokenizer.end_id, tokenizer.start_id) == (0, 1, 0)


def test_logits_match_transformers(variant):
    _, model, ref = variant
    for i in range(len(ref["sentences"])):
        logits = np.asarray(model(_inputs(ref, i)))[0]
        np.testing.assert_allclose(logits, ref[f"logits_{i}"], atol=TOLERANCE, rtol=0)


def test_token_ids_match_sentencepiece(variant):
    _, model, ref = variant
    ids = model.preprocessor.tokenizer.tokenize([str(s) for s in ref["sentences"]]).to_list()
    # T5's tokenizer appends </s> (id 1) to every text.
    assert [row + [1] for row in ids] == [ref[f"ids_{i}"].tolist() for i in range(len(ids))]


def test_greedy_generation_matches_transformers(variant):
    _, model, ref = variant
    sources = [ref[f"ids_{i}"].tolist() for i in range(len(ref["sentences"]))]
    out = generate(model, sources, max_new_tokens=8, stop_token_ids=None, start_id=0)
    assert out.tolist() == [ref[f"greedy_{i}"].tolist() for i in range(len(sources))]


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"feed_forward_proj": "gated-tanh"}, "feed_forward_proj"),
        ({"model_type": "mt5"}, "model_type"),
        ({"is_decoder": True}, "is_decoder"),
        ({"tie_word_embeddings": False, "scale_decoder_outputs": True}, "scale_decoder_outputs"),
    ],
)
def test_unmappable_config_keys_are_refused_by_name(changes, key):
    config = json.loads((FIXTURES / "hf_t5" / "config.json").read_text())
    with pytest.raises(ValueError, match=f"config.json sets {key}="):
        encoder_decoder_config_from_t5({**config, **changes})


def test_mismatched_tensors_load_nothing():
    config = json.loads((FIXTURES / "hf_t5_v1_1" / "config.json").read_text())
    model = EncoderDecoder(**encoder_decoder_config_from_t5(config))
    before = [w.copy() for w in model.get_weights()]
    tensors = read_checkpoint_tensors(FIXTURES / "hf_t5_v1_1")
    missing = {k: v for k, v in tensors.items() if "wi_0" not in k}
    with pytest.raises(CheckpointMismatchError, match="wi_0"):
        load_t5_weights(model, missing)
    copy = {**tensors, "encoder.embed_tokens.weight": tensors["shared.weight"] + 1}
    with pytest.raises(CheckpointMismatchError, match="encoder.embed_tokens.weight differs"):
        load_t5_weights(model, copy)
    assert all((a == b).all() for a, b in zip(model.get_weights(), before))
