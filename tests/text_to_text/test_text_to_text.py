"""`kerasllm.text_to_text`: text handling and `TextToText`'s guarantees, on a tiny untrained
seq2seq bundle (no data package, no shipped model)."""

import numpy as np
import pytest

from kerasllm import bundle, tokenizers, zoo
from kerasllm.testing import tiny_translation_bundle
from kerasllm.text_to_text import TextToText, clean, split_to_fit


def test_clean_drops_control_characters_and_collapses_spaces():
    assert clean("  a\x00b\u200b  c\t\nd ") == "ab c d"
    assert clean("\x01\x02  ") == ""
    assert clean("e\u0301") == "é"  # NFC


def test_split_to_fit_prefers_sentence_then_clause_then_word_breaks():
    def short(text):
        return len(text) <= 12

    assert split_to_fit("One two. Three four. Five", short) == ["One two.", "Three four.", "Five"]
    assert split_to_fit("aaaa bbbb, cccc dddd", short) == ["aaaa bbbb,", "cccc dddd"]
    assert split_to_fit("x" * 20, short) == ["x" * 20]  # one word: the caller truncates
    text = "word " * 40
    assert " ".join(split_to_fit(text.strip(), short)) == text.strip()


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "b"
    tiny_translation_bundle(path)
    return path


def test_text_to_text_returns_one_bounded_output_per_input(tiny_bundle):
    pipeline = TextToText(tiny_bundle)
    calls = []
    generate = pipeline.model.generate

    def recording_generate(rows, **kwargs):
        calls.append((rows, kwargs["max_new_tokens"]))
        return generate(rows, **kwargs)

    pipeline.model.generate = recording_generate
    long_text = "the king said. " * 30  # far over the 12-token source length
    inputs = ["", "   ", "the king", long_text, "مرحبا 😀 \x07", "le roi"]
    outputs = pipeline.generate(inputs, max_length=4)
    assert len(outputs) == len(inputs)
    assert all(isinstance(text, str) for text in outputs)
    assert outputs[0] == "" and outputs[1] == ""
    rows = [row for batch, _ in calls for row in batch]
    # Empty inputs never reach the model; the long one arrives as pieces that fit the encoder.
    assert len(rows) > 4 + 1 and all(len(row) <= 12 for row in rows)
    assert all(max_new <= 4 for _, max_new in calls)
    tok = pipeline.target_tokenizer
    assert all(len(tok.tokenize(text).numpy()) <= 4 for text in outputs[2:3] + outputs[4:])
    pipeline.model.generate = generate
    assert pipeline.generate("the king", max_length=4) == outputs[2]
    assert pipeline.generate(["the king"], beams=2, max_length=4)[0] == pipeline.generate(
        "the king", beams=2, max_length=4
    )
    with pytest.raises(ValueError, match="beams"):
        pipeline.generate("x", beams=0)


def test_text_to_text_rejects_non_seq2seq_bundle(tmp_path):
    tok = tokenizers.train_sentencepiece(["a b c"] * 20, vocabulary_size=270)
    model = zoo.get("gpt_tiny", task="causal_lm", vocabulary_size=tok.vocabulary_size, weights=None)
    bundle.Bundle(model, {"text": tok}).save(tmp_path / "lm")
    with pytest.raises(ValueError, match="needs a Seq2SeqLM bundle"):
        TextToText(tmp_path / "lm")


def test_text_to_text_refuses_bad_arguments_with_errors_naming_them(tiny_bundle):
    pipeline = TextToText(tiny_bundle)
    calls = []
    generate = pipeline.model.generate
    pipeline.model.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    for texts, message in [
        (None, "`texts` must be a str .* got NoneType"),
        (5, "`texts` must be a str .* got int"),
        ({"a": 1}, "`texts` must be a str .* got dict"),
        ([None], r"`texts\[0\]` must be a str .* got NoneType None"),
        (["ok", 5], r"`texts\[1\]` must be a str .* got int 5"),
    ]:
        with pytest.raises(TypeError, match=message):
            pipeline.generate(texts)
    for kwargs, message in [
        (dict(max_length=0), r"`max_length` must be a positive int or None .* got 0"),
        (dict(max_length=-3), "`max_length` must be a positive int or None"),
        (dict(max_length=2.5), "`max_length` must be a positive int or None"),
        (dict(beams=True), "`beams` must be an int >= 1"),
        (dict(beams=1.5), "`beams` must be an int >= 1"),
        (dict(batch_size=0), "`batch_size` must be an int >= 1"),
        (dict(length_penalty=float("nan")), "`length_penalty` must be a finite number"),
        (dict(seed="x"), "`seed` must be an int or None"),
        (dict(beams=2, sampler="nope"), "Unknown sampler 'nope'"),
    ]:
        with pytest.raises(ValueError, match=message):
            pipeline.generate(["the king"], **kwargs)
    assert calls == []  # every check comes before any decoding
    assert pipeline.generate([]) == [] and pipeline.generate(()) == []
    assert calls == []
    # UTF-8 bytes are text (as in the served signatures); undecodable bytes do not raise.
    assert pipeline.generate(b"the king", max_length=4) == pipeline.generate(
        "the king", max_length=4
    )
    assert len(pipeline.generate([b"\xff\xfe the king", "le roi"], max_length=4)) == 2
    assert pipeline.generate(np.array(["the king"]), max_length=4) == pipeline.generate(
        ["the king"], max_length=4
    )


def test_text_to_text_maps_typographic_punctuation_like_its_exported_graph(tiny_bundle):
    pipeline = TextToText(tiny_bundle)
    typographic = "the king\u2019s \u201cpeople\u201d\u00a0\u2014 said\u2026"
    plain = 'the king\'s "people" -- said...'
    source = pipeline.source_tokenizer
    assert source.unify_typography is True  # newly trained tokenizers unify by default
    assert source.tokenize(typographic).numpy().tolist() == source.tokenize(plain).numpy().tolist()
    assert pipeline.generate([typographic], max_length=4) == pipeline.generate(
        [plain], max_length=4
    )
    source.unify_typography = False  # a tokenizer.json written before the option existed
    assert source.tokenize(typographic).numpy().tolist() != source.tokenize(plain).numpy().tolist()
    source.unify_typography = True


def test_split_to_fit_ends_sentences_after_closing_quotes():
    def short(text):
        return len(text) <= 20

    for quoted in ('"Go now."', "\u201cGo now.\u201d", "'Go now.'", "(Go now.)"):
        text = f"He said, {quoted} Then he left."
        assert split_to_fit(text, short) == [f"He said, {quoted}", "Then he left."]
