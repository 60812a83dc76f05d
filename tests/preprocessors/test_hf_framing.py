"""Imported Hugging Face checkpoints frame their inputs as their family's tokenizer does (T5
`text </s>`, BART `<s> text </s>`, a SentencePiece Llama `<s> text`, tokenizer.json decoders
as their post-processor says), in the preprocessor (eagerly and as a `tf.data` map), the
`kerasllm.data` pipeline and the exported SavedModel; the option survives a `.keras` round
trip, and the default framing is unchanged."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.data as kd
from kerasllm import bundle, zoo
from kerasllm.convert.bart import load_bart_tokenizer
from kerasllm.convert.hf_decoder import load_hf_checkpoint
from kerasllm.export import export
from kerasllm.export.serving import serving_module
from kerasllm.export.text import encode
from kerasllm.preprocessors import CausalLMPreprocessor, Seq2SeqLMPreprocessor

FIXTURES = Path(__file__).parents[1] / "fixtures"
TEXTS = ["Hello world!", "", "The lazy fox reads tokens. " * 8, "café naïve 😀"]


def _reference(name: str) -> dict:
    with np.load(FIXTURES / f"{name}_reference.npz") as data:
        return {key: data[key] for key in data.files}


def _rows(out: dict, ids: str, mask: str) -> list[list[int]]:
    ids, mask = np.asarray(out[ids]), np.asarray(out[mask]).astype(bool)
    return [row[keep].tolist() for row, keep in zip(ids, mask)]


@pytest.fixture(scope="module")
def t5():
    return zoo.get(str(FIXTURES / "hf_t5"))


@pytest.fixture(scope="module")
def llama_spm():
    return zoo.get(str(FIXTURES / "hf_llama_spm"))


def test_t5_sources_are_framed_as_hf_text_eos(t5):
    # The reference records T5TokenizerFast's ids with its special tokens: `text </s>`.
    reference = _reference("hf_t5")
    sentences = [str(s) for s in reference["sentences"]]
    expected = [reference[f"ids_{i}"].tolist() for i in range(len(sentences))]
    assert all(row[-1] == t5.preprocessor.tokenizer.end_id for row in expected)
    out = t5.preprocessor.generate_preprocess(sentences)
    assert _rows(out, "encoder_token_ids", "encoder_padding_mask") == expected


def test_bart_sources_are_framed_as_hf_bos_text_eos():
    model = zoo.get(str(FIXTURES / "hf_bart"), weights=None)
    # The reference records BartTokenizer's `<s> text </s>` (`source_<i>`) in Hugging Face's
    # ids; kerasllm exchanges id 0 (`<s>`) with `<pad>`'s.
    _, swap = load_bart_tokenizer(FIXTURES / "hf_bart")
    reference = _reference("hf_bart")
    sentences = [str(s) for s in reference["sentences"]]
    exchange = {0: swap, swap: 0}
    expected = [
        [exchange.get(i, i) for i in reference[f"source_{n}"].tolist()]
        for n in range(len(sentences))
    ]
    out = model.preprocessor.generate_preprocess(sentences)
    assert _rows(out, "encoder_token_ids", "encoder_padding_mask") == expected


def test_llama_prompts_get_bos_only_when_the_hf_tokenizer_adds_it(llama_spm):
    # The reference holds SentencePiece's ids without special tokens; LlamaTokenizer
    # (`add_bos_token: true` in tokenizer_config.json) puts `<s>` before them.
    reference = _reference("hf_llama_spm")
    sentences = [str(s) for s in reference["sentences"]]
    bos = llama_spm.preprocessor.tokenizer.token_to_id("<s>")
    expected = [[bos, *reference[f"spm_ids_{i}"].tolist()] for i in range(len(sentences))]
    out = llama_spm.preprocessor.generate_preprocess(sentences)
    assert _rows(out, "token_ids", "padding_mask") == expected
    # An empty prompt is the start token alone, not `<s> <s>`.
    assert _rows(llama_spm.preprocessor.generate_preprocess([""]), "token_ids", "padding_mask") == [
        [bos]
    ]
    # A too-long prompt keeps `<s>` and its last tokens.
    row = _rows(
        llama_spm.preprocessor.generate_preprocess([sentences[1]], 4), "token_ids", "padding_mask"
    )
    assert row == [[bos, *expected[1][-3:]]]
    # A tokenizer.json whose post-processor adds no special token (as the fixture's, like
    # SmolLM's and Qwen2's) leaves prompts unframed.
    plain = zoo.get(str(FIXTURES / "hf_llama"), weights=None)
    assert plain.preprocessor.add_start_token is False
    reference = _reference("hf_llama")
    out = plain.preprocessor.generate_preprocess([str(reference["sentences"][0])])
    assert _rows(out, "token_ids", "padding_mask") == [reference["ids_0"].tolist()]


def test_seq2seq_framing_agrees_eagerly_in_tf_data_pipeline_and_saved_model(t5, tmp_path):
    pre = t5.preprocessor
    tok = pre.tokenizer
    eager = _rows(pre.generate_preprocess(TEXTS), "encoder_token_ids", "encoder_padding_mask")
    assert all(row[-1] == tok.end_id for row in eager)
    # tf.data: the preprocessor as a map (teacher forcing batches) and the training pipeline.
    targets = ["a b"] * len(TEXTS)
    mapped = tf.data.Dataset.from_tensor_slices((TEXTS, targets)).batch(len(TEXTS)).map(pre)
    x, _, _ = next(iter(mapped))
    assert _rows(x, "encoder_token_ids", "encoder_padding_mask") == eager
    dataset, _ = kd.seq2seq_dataset(
        list(zip(TEXTS, targets)), tok, tok, pre.encoder_sequence_length, 8, 8,
        shuffle=False, source_end_token=True,
    )  # fmt: skip
    x, _, _ = next(iter(dataset))
    # The pipeline drops the empty source (no tokens); the other rows are framed alike.
    assert _rows(x, "encoder_token_ids", "encoder_padding_mask") == [eager[0], *eager[2:]]
    # The SavedModel (options read from the model's preprocessor) translates what `generate`
    # (which frames through the preprocessor) gives; the unframed source would differ.
    path = export(bundle.Bundle(t5, {"source": tok, "target": tok}), tmp_path / "t5", max_length=4)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(TEXTS))
    served = [t.decode() for t in served["translation"].numpy()]
    assert served == t5.generate(TEXTS, max_new_tokens=4)
    t5.preprocessor = Seq2SeqLMPreprocessor(tok, pre.encoder_sequence_length)
    try:
        assert served != t5.generate(TEXTS, max_new_tokens=4)
    finally:
        t5.preprocessor = pre


def test_causal_framing_agrees_in_the_serving_graph(llama_spm):
    # The exported generation signatures frame prompts with `encode`, taking the option from
    # the model's preprocessor (the SavedModel itself is checked for seq2seq above).
    tok = llama_spm.preprocessor.tokenizer
    module = serving_module(llama_spm, {"text": tok}, max_length=3)
    assert module.prompt_first == tok.start_id
    prompts = tf.constant(["Hello world!", "", "The lazy fox reads tokens. " * 8])
    length = llama_spm.preprocessor.sequence_length

    @tf.function
    def served(text):
        ids, mask, _ = encode(tok, text, length, module.prompt_first, filler_id=None, keep="last")
        return {"token_ids": ids, "padding_mask": mask}

    expected = llama_spm.preprocessor.generate_preprocess(prompts)
    assert _rows(served(prompts), "token_ids", "padding_mask") == _rows(
        expected, "token_ids", "padding_mask"
    )


def test_framing_options_round_trip_and_default_is_unchanged(t5, tmp_path):
    path = tmp_path / "t5.keras"
    t5.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.preprocessor.source_start_token, loaded.preprocessor.source_end_token) == (
        False,
        True,
    )
    tok = t5.preprocessor.tokenizer
    restored = Seq2SeqLMPreprocessor.from_config(t5.preprocessor.get_config())
    assert restored.source_end_token is True
    # Old configs (no option) load with today's framing: the source's tokens alone.
    config = {k: v for k, v in t5.preprocessor.get_config().items() if "_token" not in k}
    default = Seq2SeqLMPreprocessor.from_config(config)
    default.tokenizer = tok
    out = default.generate_preprocess(["Hello world!"])
    assert (
        _rows(out, "encoder_token_ids", "encoder_padding_mask")[0]
        == (tok.tokenize(["Hello world!"]).to_list()[0])
    )
    causal = CausalLMPreprocessor(tok, sequence_length=8)
    assert causal.get_config()["add_start_token"] is False
    _, no_start = load_hf_checkpoint(FIXTURES / "hf_llama", weights=False)
    with pytest.raises(ValueError, match="add_start_token"):
        CausalLMPreprocessor(no_start, add_start_token=True)
