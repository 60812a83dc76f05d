"""BART import: parity with Hugging Face transformers on a tiny random checkpoint.

`tests/fixtures/hf_bart/` is a randomly initialised `BartForConditionalGeneration` (2+2 layers,
d=32, 4 heads, post-norm, learned positions with BART's offset of 2, `layernorm_embedding`,
GELU, every weight random, tied embeddings) with a byte-level BPE in BART's layout (`<s>` 0,
`<pad>` 1, `</s>` 2, `<unk>` 3), written by `scripts/make_hf_reference.py`. kerasllm pads with
id 0, so ids 0 and 1 are exchanged (`hf_id_swap` = 1).
"""

import json

import numpy as np
import pytest
from hf_parity import FIXTURES, TOLERANCE, reference

from kerasllm import zoo
from kerasllm.convert import CheckpointMismatchError, read_checkpoint_tensors
from kerasllm.convert.bart import encoder_decoder_config_from_bart, load_bart_weights
from kerasllm.convert.hf_decoder import hf_id_swap, swap_ids
from kerasllm.generation import generate
from kerasllm.models import EncoderDecoder, Seq2SeqLM

CHECKPOINT = FIXTURES / "hf_bart"
SWAP = 1
REFERENCE = reference("hf_bart", SWAP)
CONFIG = json.loads((CHECKPOINT / "config.json").read_text())


def _swapped(key):
    """The reference's `key_<i>` id rows in kerasllm's numbering."""
    return {i: swap_ids(REFERENCE[f"{key}_{i}"], SWAP) for i in range(len(REFERENCE["sentences"]))}


@pytest.fixture(scope="module")
def model():
    return zoo.get(CHECKPOINT)


def test_config_maps_to_a_post_norm_seq2seq_backbone(model):
    assert isinstance(model, Seq2SeqLM) and model.preset_weights == str(CHECKPOINT)
    backbone = model.backbone
    assert (backbone.norm_first, backbone.embedding_norm, backbone.use_bias) == (False, True, True)
    assert backbone.position_embedding == "learned" and backbone.max_sequence_length == 64
    assert backbone.tie_embeddings and backbone.token_embedding.logit_scale is None
    assert hf_id_swap(CHECKPOINT) == SWAP
    tokenizer = model.preprocessor.tokenizer
    assert (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id) == (0, 2, 2)
    assert tokenizer.id_to_token(0) == "<pad>" and tokenizer.id_to_token(1) == "<s>"
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 300 * 1024


def test_logits_match_transformers(model):
    # Source `<s> text </s>` and decoder input `</s> <s> target`, in kerasllm's ids.
    sources, targets = _swapped("source"), _swapped("decoder_ids")
    for i, source in sources.items():
        target = targets[i]
        inputs = {
            "encoder_token_ids": source[None],
            "encoder_padding_mask": np.ones((1, len(source)), "int32"),
            "decoder_token_ids": target[None],
            "decoder_padding_mask": np.ones((1, len(target)), "int32"),
        }
        logits = np.asarray(model(inputs))[0]
        np.testing.assert_allclose(logits, REFERENCE[f"logits_{i}"], atol=TOLERANCE, rtol=0)


def test_token_ids_match_transformers(model):
    sentences = [str(s) for s in REFERENCE["sentences"]]
    ours = model.preprocessor.tokenizer.tokenize(sentences).to_list()
    assert ours == [REFERENCE[f"ids_{i}"].tolist() for i in range(len(sentences))]


def test_greedy_generation_matches_transformers(model):
    sources = [row.tolist() for row in _swapped("source").values()]
    out = generate(model, sources, max_new_tokens=8, stop_token_ids=None, start_id=2)
    assert out.tolist() == [REFERENCE[f"greedy_{i}"].tolist() for i in range(len(sources))]


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"normalize_before": True}, "normalize_before"),
        ({"add_final_layer_norm": True}, "add_final_layer_norm"),
        ({"decoder_attention_heads": 2}, "decoder_attention_heads"),
        ({"decoder_ffn_dim": 64}, "decoder_ffn_dim"),
        ({"activation_function": "quick_gelu"}, "activation_function"),
        ({"model_type": "mbart"}, "model_type"),
    ],
)
def test_unmappable_config_keys_are_refused_by_name(changes, key):
    with pytest.raises(ValueError, match=f"config.json sets {key}="):
        encoder_decoder_config_from_bart({**CONFIG, **changes})


def test_mismatched_tensors_and_logit_bias_load_nothing():
    model = EncoderDecoder(**encoder_decoder_config_from_bart(CONFIG))
    before = [w.copy() for w in model.get_weights()]
    tensors = read_checkpoint_tensors(CHECKPOINT)
    missing = {k: v for k, v in tensors.items() if "fc1.bias" not in k}
    with pytest.raises(CheckpointMismatchError, match="fc1.bias"):
        load_bart_weights(model, missing)
    bias = np.zeros((1, CONFIG["vocab_size"]), "float32")
    bias[0, 5] = 1.0
    with pytest.raises(CheckpointMismatchError, match="final_logits_bias"):
        load_bart_weights(model, {**tensors, "final_logits_bias": bias})
    positions = {**tensors, "model.encoder.embed_positions.weight": np.zeros((64, 32), "float32")}
    with pytest.raises(CheckpointMismatchError, match="embed_positions"):
        load_bart_weights(model, positions)
    assert all((a == b).all() for a, b in zip(model.get_weights(), before))
