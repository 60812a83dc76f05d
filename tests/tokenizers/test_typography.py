"""Typographic punctuation: `unify_typography` and the tokenizer option that applies it."""

import json

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.tokenizers.typography import unify_typography

# What users paste, and what the ASCII training text has in its place.
TYPOGRAPHIC = (
    "It\u2019s \u2018his\u2019 \u201chouse\u201d\u00a0: a\u202fb\u2009c\u2002d\u3000e "
    "1\u20133 well\u2014then \u2010x\u2011y \u22122 wait\u2026 \uff21\uff42\uff01 \u201elow\u201f"
)
ASCII = 'It\'s \'his\' "house" : a b c d e 1-3 well--then -x-y -2 wait... Ab! "low"'
# Accents, guillemets (real French punctuation), primes, CJK, emoji, Hebrew: not typography.
UNTOUCHED = (
    "caf\u00e9 \u00abjoli\u00bb \u2039x\u203a 5\u2032 \u6f22\u5b57 \U0001f600 "
    "\u05e9\u05dc\u05d5\u05dd"
)
CORPUS = [
    "It's the king's house, \"yes\" he said -- well... 1-3 A b c!",
    "the people went up to the house of the king",
] * 30


def _decoded(tensor):
    return [t.decode("utf-8") for t in np.reshape(tensor.numpy(), [-1])]


def test_unify_typography_maps_each_class_and_leaves_other_text_alone():
    out = unify_typography([TYPOGRAPHIC, UNTOUCHED, ASCII, ""])
    assert _decoded(out) == [ASCII, UNTOUCHED, ASCII, ""]


def test_unify_typography_keeps_shapes_and_invalid_utf8_bytes():
    assert unify_typography("a\u2019b").numpy() == b"a'b"  # scalar in, scalar out
    assert unify_typography(tf.zeros([0], tf.string)).shape == [0]
    grid = unify_typography([["a\u2013b", "c"], ["d\u00a0e", "f"]])
    assert grid.shape == [2, 2] and _decoded(grid) == ["a-b", "c", "d e", "f"]
    # Byte-level tokenizers keep any bytes: a row that is not UTF-8 is returned as it is.
    broken = b"\xff\xfe it\xe2\x80\x99s"
    assert unify_typography([broken]).numpy().tolist() == [broken]


def test_unify_typography_runs_in_graphs_and_tf_data():
    graph = tf.function(unify_typography, input_signature=[tf.TensorSpec([None], tf.string)])
    assert _decoded(graph(tf.constant([TYPOGRAPHIC]))) == [ASCII]
    dataset = tf.data.Dataset.from_tensor_slices([TYPOGRAPHIC, UNTOUCHED]).map(unify_typography)
    assert [t.decode() for t in dataset.as_numpy_iterator()] == [ASCII, UNTOUCHED]


@pytest.fixture(scope="module")
def small_tokenizers():
    return {
        "wordpiece": kt.train_wordpiece(CORPUS, 120, unify_typography=False),
        "sentencepiece": kt.train_sentencepiece(CORPUS, 300, unify_typography=False),
        "byte_bpe": kt.train_byte_bpe(CORPUS, 280),
    }


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece", "byte_bpe"])
def test_the_option_makes_typographic_text_tokenize_like_ascii(small_tokenizers, kind):
    tokenizer = small_tokenizers[kind]
    assert tokenizer.unify_typography is False  # off: ids as they always were
    assert (
        tokenizer.tokenize(TYPOGRAPHIC).numpy().tolist()
        != tokenizer.tokenize(ASCII).numpy().tolist()
    )
    tokenizer.unify_typography = True
    try:
        expected = tokenizer.tokenize([ASCII, UNTOUCHED]).to_list()
        assert tokenizer.tokenize([TYPOGRAPHIC, UNTOUCHED]).to_list() == expected
        if kind == "sentencepiece":
            # Inside a graph and a tf.data pipeline (the training data path): the same ids.
            # One kind suffices, the option lives in the base class (and tracing keras_hub's
            # WordPiece and BPE graphs takes tens of seconds).
            graph = tf.function(lambda s: tokenizer.tokenize(s).to_tensor())
            assert graph(tf.constant([TYPOGRAPHIC])).numpy().tolist()[0] == expected[0]
            dataset = tf.data.Dataset.from_tensors(tf.constant([TYPOGRAPHIC])).map(
                lambda s: tokenizer.tokenize(s).to_tensor()
            )
            assert next(dataset.as_numpy_iterator()).tolist()[0] == expected[0]
        assert _decoded(tokenizer.normalize([TYPOGRAPHIC])) == _decoded(
            tokenizer.normalize([ASCII])
        )
        if kind != "wordpiece":  # lossless kinds: the round trip gives the ASCII text
            round_trip = tokenizer.detokenize(tokenizer.tokenize([TYPOGRAPHIC]))
            assert _decoded(round_trip) == _decoded(tokenizer.normalize([ASCII]))
    finally:
        tokenizer.unify_typography = False


def test_the_option_is_saved_loaded_and_checked(small_tokenizers, tmp_path):
    tokenizer = small_tokenizers["sentencepiece"]
    tokenizer.save(tmp_path / "off")
    config = json.loads((tmp_path / "off" / "tokenizer.json").read_text())
    assert config["unify_typography"] is False
    tokenizer.unify_typography = True
    try:
        tokenizer.save(tmp_path / "on")
    finally:
        tokenizer.unify_typography = False
    loaded = kt.load(tmp_path / "on")
    assert loaded.unify_typography is True
    assert loaded.tokenize(TYPOGRAPHIC).numpy().tolist() == loaded.tokenize(ASCII).numpy().tolist()
    # A tokenizer.json written before the option existed tokenizes text unchanged.
    del config["unify_typography"]
    (tmp_path / "off" / "tokenizer.json").write_text(json.dumps(config))
    assert kt.load(tmp_path / "off").unify_typography is False
    config["unify_typography"] = "yes"
    (tmp_path / "off" / "tokenizer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"tokenizer\.json: `unify_typography` must be true or"):
        kt.load(tmp_path / "off")
    with pytest.raises(TypeError, match="`unify_typography` must be True or False"):
        tokenizer.unify_typography = 1


def test_the_option_travels_into_a_saved_model(small_tokenizers, tmp_path):
    tokenizer = kt.load(small_tokenizers["sentencepiece"].save(tmp_path / "tok"))
    tokenizer.unify_typography = True
    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda text: tokenizer.tokenize(text).to_tensor(),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "saved"))
    served = tf.saved_model.load(str(tmp_path / "saved"))
    out = served.tokenize(tf.constant([TYPOGRAPHIC, ASCII])).numpy().tolist()
    assert out[0] == out[1] == tokenizer.tokenize([ASCII]).to_tensor().numpy().tolist()[0]


def test_trained_tokenizers_unify_typography_by_default_except_byte_bpe():
    texts = ["the king’s house – “go”"] * 20
    wordpiece = kt.train_wordpiece(texts, vocabulary_size=60)
    assert wordpiece.unify_typography
    # The vocabulary was learned on the unified text: no curly quote survived as a piece.
    assert not any("’" in token or "“" in token for token in wordpiece.get_vocabulary())
    assert kt.train_sentencepiece(texts, vocabulary_size=290).unify_typography
    noisy = kt.train_sentencepiece(texts, 290).with_sampling(alpha=0.1)
    assert noisy.unify_typography
    assert not kt.train_sentencepiece(texts, 290, unify_typography=False).unify_typography
    with pytest.raises(TypeError, match="unify_typography"):
        kt.train_wordpiece(texts, vocabulary_size=60, unify_typography="yes")
