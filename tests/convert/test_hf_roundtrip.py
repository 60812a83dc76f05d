"""Export back to Hugging Face (Llama family, GPT-2) and T5's sentinel tokens.

- `save_llama_checkpoint` writes `config.json` + `model.safetensors` whose tensors are exactly
  the imported checkpoint's (so transformers loads the same model; checked once with
  `scripts/make_hf_reference.py --check-export`), and kerasllm reloads them with the
  same logits; `save_gpt2_checkpoint` the same for GPT-2 (`c_attn` fused back);
- the converted T5 tokenizer has `<extra_id_N>` at Hugging Face's ids (fixture
  `hf_t5_sentinels/`: the published checkpoints' layout, saved by transformers' `T5Tokenizer`),
  so `kerasllm.data.span_corruption_dataset` makes batches for the imported model.
"""

import json
import shutil

import numpy as np
import pytest
from hf_parity import FIXTURES, check_logits, reference

from kerasllm import zoo
from kerasllm.convert import read_checkpoint_tensors
from kerasllm.convert.gpt2 import decoder_config_from_gpt2, save_gpt2_checkpoint
from kerasllm.convert.hf_decoder import load_hf_checkpoint
from kerasllm.convert.llama import (
    decoder_config_from_llama,
    hf_config_from_llama_decoder,
    save_llama_checkpoint,
)
from kerasllm.convert.t5 import t5_sentinels
from kerasllm.models import CausalLM
from kerasllm.tokenizers import sentinel_ids

SENTINELS = FIXTURES / "hf_t5_sentinels"
SENTINEL_REFERENCE = json.loads((FIXTURES / "hf_t5_sentinels_reference.json").read_text())


@pytest.mark.parametrize("name", ["hf_llama", "hf_llama_tied", "hf_llama_spm"])
def test_llama_exports_the_checkpoint_it_imported(tmp_path, name):
    source = FIXTURES / name
    decoder, _ = load_hf_checkpoint(source)
    folder = save_llama_checkpoint(CausalLM(decoder), tmp_path / name, tokenizer_from=source)
    exported, original = read_checkpoint_tensors(folder), read_checkpoint_tensors(source)
    if decoder.tie_embeddings:  # transformers saves the tied copy; the export leaves it out
        original.pop("lm_head.weight", None)
    assert sorted(exported) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(exported[key], value, err_msg=key)
    # The written config.json converts back to the same Decoder.
    config = json.loads((folder / "config.json").read_text())
    source_config = json.loads((source / "config.json").read_text())
    assert decoder_config_from_llama(config) == decoder_config_from_llama(source_config)
    assert config["eos_token_id"] == source_config["eos_token_id"]
    # And kerasllm reloads it (with the copied tokenizer) computing transformers' logits.
    reloaded = zoo.get(folder)
    assert reloaded.preprocessor is not None
    check_logits(reloaded, reference(name))


def test_gpt2_exports_the_checkpoint_it_imported(tmp_path):
    source = FIXTURES / "hf_gpt2"
    decoder, _ = load_hf_checkpoint(source)
    folder = save_gpt2_checkpoint(decoder, tmp_path / "gpt2", swap=319, tokenizer_from=source)
    exported, original = read_checkpoint_tensors(folder), read_checkpoint_tensors(source)
    original.pop("lm_head.weight", None)  # tied: transformers 5 does not save it anyway
    assert sorted(exported) == sorted(original)
    for key, value in original.items():  # c_attn fused back from query, key and value
        np.testing.assert_array_equal(exported[key], value, err_msg=key)
    config = json.loads((folder / "config.json").read_text())
    assert decoder_config_from_gpt2(config) == decoder_config_from_gpt2(
        json.loads((source / "config.json").read_text())
    )
    check_logits(zoo.get(folder), reference("hf_gpt2", 319))


def test_llama_export_refuses_what_llama_cannot_represent(tmp_path):
    with pytest.raises(ValueError, match="position_embedding='rotary'"):
        hf_config_from_llama_decoder(zoo.get("gpt_tiny", weights=None))
    with pytest.raises(ValueError, match="scale_tied_logits=True"):
        hf_config_from_llama_decoder(
            zoo.get("llama_tiny", weights=None, tie_embeddings=True, scale_tied_logits=True)
        )
    with pytest.raises(ValueError, match="Decoder or a CausalLM"):
        save_llama_checkpoint(zoo.get("transformer_tiny", weights=None), tmp_path)


def test_t5_tokenizer_has_the_sentinels_at_hugging_face_ids():
    tokenizer = zoo.get_tokenizer(SENTINELS)
    config = json.loads((SENTINELS / "config.json").read_text())
    # 90 pieces + 100 sentinels + 6 ids no token uses = the model's vocabulary.
    assert tokenizer.vocabulary_size == config["vocab_size"] == 196
    assert sentinel_ids(tokenizer) == SENTINEL_REFERENCE["sentinel_ids"]
    assert sentinel_ids(tokenizer)[:2] == [189, 188]  # <extra_id_0> last, as T5's 32099
    # Text without sentinels: Hugging Face's ids.
    text, ids = SENTINEL_REFERENCE["texts"][2], SENTINEL_REFERENCE["ids"][2]
    assert tokenizer.tokenize(text).numpy().tolist() == ids
    # Text with sentinels: each sentinel is one id (never split) and the text round-trips.
    # (Hugging Face tokenizes the text between sentinels separately, so the word-boundary
    # pieces next to a sentinel can differ; span corruption inserts sentinel ids directly.)
    first = SENTINEL_REFERENCE["texts"][0]
    ours = tokenizer.tokenize(first).numpy().tolist()
    assert ours.count(189) == ours.count(188) == 1
    assert tokenizer.detokenize(ours).numpy().decode() == first


def test_t5_sentinels_without_tokenizer_json_follow_t5_tokenizer(tmp_path):
    folder = tmp_path / "t5"
    folder.mkdir()
    for name in ("config.json", "spiece.model"):
        shutil.copy(SENTINELS / name, folder / name)
    assert sentinel_ids(zoo.get_tokenizer(folder)) == SENTINEL_REFERENCE["sentinel_ids"]
    (folder / "tokenizer_config.json").write_text(json.dumps({"extra_ids": 3}))
    assert sorted(t5_sentinels(folder, 90, 196)) == [90, 91, 92]
    with pytest.raises(ValueError, match="config.json sets vocab_size=100"):
        t5_sentinels(SENTINELS, 90, 100)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": {"150": {"content": "<extra_id_0>"}}})
    )
    with pytest.raises(ValueError, match="added_tokens_decoder"):
        zoo.get_tokenizer(folder)


def test_span_corruption_batches_for_the_imported_t5():
    from kerasllm.data import span_corruption_dataset

    tokenizer = zoo.get_tokenizer(SENTINELS)
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "Hello world! " * 5]
    data, _ = span_corruption_dataset(texts, tokenizer, sequence_length=24, batch_size=2, seed=0)
    x, y, _ = next(iter(data))
    sentinels = set(SENTINEL_REFERENCE["sentinel_ids"])
    assert sentinels & set(x["encoder_token_ids"].numpy().ravel().tolist())
    assert sentinels & set(y.numpy().ravel().tolist())
    assert x["decoder_padding_mask"].numpy()[:, 0].all()  # the start token (<pad>) is real
    assert int(np.max(x["encoder_token_ids"])) < 196
