"""Llama 1/2-style checkpoints whose tokenizer is a SentencePiece `tokenizer.model` only.

`tests/fixtures/hf_llama_spm/`: a tiny untied `LlamaForCausalLM` and a SentencePiece BPE model
in Llama's layout (unk 0, bos 1, eos 2, byte fallback, split digits, dummy prefix), no
`tokenizer.json`. The reference holds transformers 5's `LlamaTokenizer` ids and SentencePiece's
own (the slow tokenizer's), written by `scripts/make_hf_reference.py`.
"""

import numpy as np
import pytest
from hf_parity import FIXTURES, check_greedy, check_logits, reference

from kerasllm import zoo
from kerasllm.convert.hf_decoder import hf_id_swap
from kerasllm.models import CausalLM
from kerasllm.tokenizers import SentencePieceTokenizer

CHECKPOINT = FIXTURES / "hf_llama_spm"
REFERENCE = reference("hf_llama_spm")


@pytest.fixture(scope="module")
def model():
    return zoo.get(CHECKPOINT)


def test_fixture_has_no_tokenizer_json_and_is_small():
    assert not (CHECKPOINT / "tokenizer.json").exists()
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 300 * 1024


def test_sentencepiece_tokenizer_with_llama_roles(model):
    assert isinstance(model, CausalLM) and hf_id_swap(CHECKPOINT) == 0
    tokenizer = model.preprocessor.tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id) == (0, 1, 2)
    assert tokenizer.vocabulary_size == model.backbone.vocabulary_size


def test_token_ids_match_sentencepiece_and_transformers(model):
    tokenizer = model.preprocessor.tokenizer
    sentences = [str(s) for s in REFERENCE["sentences"]]
    ours = tokenizer.tokenize(sentences).to_list()
    # The slow (SentencePiece) tokenizer's ids, for every sentence.
    assert ours == [REFERENCE[f"spm_ids_{i}"].tolist() for i in range(len(sentences))]
    # transformers 5's LlamaTokenizer agrees except on text that starts with a space (it adds
    # no dummy-prefix space there; SentencePiece does).
    for i, text in enumerate(sentences):
        if not text.startswith(" "):
            assert ours[i] == REFERENCE[f"ids_{i}"].tolist(), text
    assert tokenizer.detokenize(ours[:3]).numpy().tolist() == [s.encode() for s in sentences[:3]]


def test_logits_and_greedy_generation_match_transformers(model):
    check_logits(model, REFERENCE)
    check_greedy(model, REFERENCE)


def test_training_frames_texts_with_bos_and_eos(model):
    x, y, _ = model.preprocessor(["Hello world!"])
    ids = np.asarray(x["token_ids"])[0].tolist()
    assert ids == [1, *REFERENCE["ids_0"].tolist()]  # <s> text (the label ends with </s>)
    assert np.asarray(y)[0].tolist()[-1] == 2
