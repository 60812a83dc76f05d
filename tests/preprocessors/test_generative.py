"""The generative preprocessors (`MaskedLMPreprocessor`, `CausalLMPreprocessor`,
`Seq2SeqLMPreprocessor`): the same ids as the `kerasllm.data` pipelines and the exported
signatures on a fuzz set, in eager code, `tf.data` and a SavedModel; `pack_segments`' options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.data as kd
import kerasllm.tokenizers as kt
from kerasllm.export.serving import CausalLMServing, Seq2SeqServing
from kerasllm.export.text import encode
from kerasllm.models import CausalLM, Decoder, Encoder, EncoderDecoder, MaskedLM, Seq2SeqLM
from kerasllm.preprocessors import (
    CausalLMPreprocessor,
    MaskedLMPreprocessor,
    Seq2SeqLMPreprocessor,
    boundary_ids,
    pack_segments,
)
from kerasllm.preprocessors.causal_lm import prompt_filler_id
from kerasllm.testing import tiny_config

EN = ["the cat sat on the mat", "a dog ran in the park", "what a good film", "héllo wörld"]
FR = ["le chat est assis sur le tapis", "un chien courait dans le parc", "quel bon film"]

# Empty, blank, long (truncated), Unicode (accents, CJK, emoji, right-to-left, zero-width,
# no-break space), special-token look-alikes, punctuation only, invalid UTF-8.
FUZZ = [
    "",
    "  \t\n ",
    "the cat sat",
    " ".join(["the cat sat on the mat"] * 30),
    "héllo wörld 映画 😀🎉 مرحبا بالعالم שלום",
    "\u200f\u200b a\u00a0dog\tran \n",
    "[CLS] a [SEP] dog [MASK] <s>",
    "!!!???...",
    b"caf\xc3 \xff\xfe bad bytes",
]


def _rows(ids, mask):
    """Each row's real tokens."""
    ids, mask = np.asarray(ids), np.asarray(mask)
    return [row[m == 1].tolist() for row, m in zip(ids, mask)]


def _tokenized(tokenizer, texts):
    """The texts a pipeline keeps: not blank, with at least one token (after U+FFFD)."""
    fixed = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    kept = []
    for text, clean in zip(texts, fixed.numpy()):
        if clean.strip() and len(tokenizer.tokenize(clean).numpy()):
            kept.append(text)
    return kept


@pytest.fixture(scope="module")
def wordpiece():
    return kt.train_wordpiece(EN * 10, vocabulary_size=80)


@pytest.fixture(scope="module")
def byte_bpe():
    return kt.train_byte_bpe(EN * 10, vocabulary_size=280)


@pytest.fixture(scope="module")
def french_bpe():
    """Another tokenizer of the same size (a seq2seq model's target side)."""
    return kt.train_byte_bpe(FR * 10, vocabulary_size=280)


# ------------------------------------------------------------------------------ pack_segments
def test_pack_segments_keeps_the_last_tokens_of_a_prompt():
    ids = tf.ragged.constant([[5, 6, 7, 8], [9], []])
    out = pack_segments([ids], 3, filler_id=1, keep="last", return_empty=True)
    assert out["token_ids"].numpy().tolist() == [[6, 7, 8], [9, 0, 0], [1, 0, 0]]
    assert out["padding_mask"].numpy().tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert out["is_empty"].numpy().tolist() == [False, False, True]
    first = pack_segments([ids], 3, first_id=2, last_id=3, keep="first")
    assert first["token_ids"].numpy().tolist() == [[2, 5, 3], [2, 9, 3], [2, 0, 3]]


def test_pack_segments_one_example_and_no_filler():
    one = pack_segments([tf.constant([5, 6, 7])], 3, first_id=2, filler_id=None)
    assert one["token_ids"].numpy().tolist() == [2, 5, 6]
    assert one["padding_mask"].numpy().tolist() == [1, 1, 1]
    empty = pack_segments([tf.ragged.constant([[], [4]])], 4, first_id=2, filler_id=None)
    assert empty["token_ids"].numpy().tolist() == [[2, 0], [2, 4]]
    assert empty["padding_mask"].numpy().tolist() == [[1, 0], [1, 1]]


def test_pack_segments_refuses_bad_options():
    ids = tf.ragged.constant([[5]])
    with pytest.raises(ValueError, match="`keep` must be one of"):
        pack_segments([ids], 4, keep="middle")
    with pytest.raises(ValueError, match='`keep="last"` applies to a single segment'):
        pack_segments([ids, ids], 4, keep="last")


# ----------------------------------------------------------------------------- causal LM
def test_causal_batches_equal_the_pipeline(wordpiece):
    tokenizer = wordpiece
    texts = _tokenized(tokenizer, FUZZ)
    pre = CausalLMPreprocessor(tokenizer, sequence_length=10, pad_to_sequence_length=True)
    ds, _ = kd.causal_lm_dataset(
        texts, tokenizer, 10, batch_size=len(texts), packing=False, shuffle=False
    )
    want = next(iter(ds))
    got = pre(texts)
    for key in ("token_ids", "padding_mask"):
        np.testing.assert_array_equal(got[0][key].numpy(), want[0][key].numpy())
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
    np.testing.assert_array_equal(got[2].numpy(), want[2].numpy())
    # `[start] t [end]` cut to 11 ids: the first 10 are the inputs, the last 10 the labels.
    start, end = tokenizer.start_id, tokenizer.end_id
    tokens = tokenizer.tokenize(texts[0]).numpy().tolist()
    assert _rows(got[0]["token_ids"], got[0]["padding_mask"])[0] == [start, *tokens, end][:10]
    assert got[1].numpy()[0][: len(tokens) + 1].tolist() == [*tokens, end][:10]


def test_causal_prompts_equal_the_export_framing(byte_bpe):
    pre = CausalLMPreprocessor(byte_bpe, sequence_length=12)
    got = pre.generate_preprocess(FUZZ)
    ids, mask, _ = encode(byte_bpe, tf.constant(FUZZ), 12, filler_id=prompt_filler_id(byte_bpe),
                          keep="last")  # fmt: skip
    np.testing.assert_array_equal(got["token_ids"].numpy(), ids.numpy())
    np.testing.assert_array_equal(got["padding_mask"].numpy(), mask.numpy())
    long = byte_bpe.tokenize(FUZZ[3]).numpy().tolist()
    assert _rows(got["token_ids"], got["padding_mask"])[3] == long[-12:]  # the last tokens
    assert _rows(got["token_ids"], got["padding_mask"])[0] == [byte_bpe.start_id]


@pytest.fixture(scope="module")
def causal_lm(byte_bpe):
    keras.utils.set_random_seed(3)
    config = tiny_config("learned_postnorm", num_layers=1, max_sequence_length=24)
    model = CausalLM(Decoder(**{**config, "vocabulary_size": byte_bpe.vocabulary_size}))
    model.preprocessor = CausalLMPreprocessor(byte_bpe, sequence_length=24)
    return model


def test_causal_generate_from_text_equals_the_exported_signature(causal_lm, byte_bpe):
    module = CausalLMServing(causal_lm, byte_bpe, max_length=4)
    served = module.signatures()["serving_default"](prompt=tf.constant(FUZZ))["completion"]
    served = [s.decode("utf-8") for s in served.numpy()]
    assert causal_lm.generate(FUZZ, max_new_tokens=4, strip_prompt=True) == served


def test_causal_generate_text_in_text_out(causal_lm, byte_bpe):
    texts = causal_lm.generate(["the cat", "a dog ran"], max_new_tokens=3)
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
    assert texts[0].startswith("the cat") and texts[1].startswith("a dog ran")
    one = causal_lm.generate("the cat", max_new_tokens=3)
    assert one == texts[0]
    assert causal_lm.generate(("the cat",), max_new_tokens=3) == [one]
    assert causal_lm.generate(np.array(["the cat"]), max_new_tokens=3) == [one]
    assert causal_lm.generate([], max_new_tokens=3) == []
    # Token ids in: ids out, exactly as `kerasllm.generation.generate` gives them.
    from kerasllm.generation import generate

    ids = [[5, 6, 7], [8]]
    np.testing.assert_array_equal(
        causal_lm.generate(ids, max_new_tokens=3), generate(causal_lm, ids, max_new_tokens=3)
    )
    beams, scores = causal_lm.generate(
        ["the cat", "a"], max_new_tokens=2, sampler=_all_beams(2), strip_prompt=True
    )
    assert [len(b) for b in beams] == [2, 2] and np.asarray(scores).shape == (2, 2)
    assert all(isinstance(t, str) for b in beams for t in b)


def _all_beams(n):
    from kerasllm.generation import BeamSampler

    return BeamSampler(n, return_all_beams=True)


def test_causal_prompts_too_long_keep_their_last_tokens(causal_lm, byte_bpe):
    # 24 positions, 4 new tokens: a long prompt keeps its last 20 tokens (it used to fail).
    long = " ".join(["the cat sat on the mat"] * 10)
    tail = byte_bpe.detokenize(byte_bpe.tokenize(long)[-20:]).numpy().decode()
    assert causal_lm.generate(long, max_new_tokens=4).startswith(tail)


# ----------------------------------------------------------------------------- masked LM
@pytest.mark.parametrize("whole_word_masking", [False, True])
def test_masked_lm_batches_equal_the_pipeline(wordpiece, whole_word_masking):
    texts = _tokenized(wordpiece, FUZZ)
    pre = MaskedLMPreprocessor(
        wordpiece,
        sequence_length=12,
        mask_rate=0.3,
        whole_word_masking=whole_word_masking,
        pad_to_sequence_length=True,
    )
    ds, _ = kd.masked_lm_dataset(
        texts,
        wordpiece,
        12,
        batch_size=len(texts),
        mask_rate=0.3,
        whole_word_masking=whole_word_masking,
        seed=7,
        shuffle=False,
    )
    want = next(iter(ds))
    got = pre(texts, seed=[7, 0])  # batch 0 of seed 7
    for key in want[0]:
        np.testing.assert_array_equal(got[0][key].numpy(), want[0][key].numpy())
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
    np.testing.assert_array_equal(got[2].numpy(), want[2].numpy())


def test_masked_lm_framing_equals_the_export_framing(wordpiece):
    pre = MaskedLMPreprocessor(wordpiece, sequence_length=12, mask_rate=0.2)
    x, y, w = pre(FUZZ, seed=1)
    ids, mask, _ = encode(wordpiece, tf.constant(FUZZ), 12, *boundary_ids(wordpiece))
    np.testing.assert_array_equal(x["padding_mask"].numpy(), mask.numpy())
    # Unmasked: the masked positions hold their original ids again.
    restored = x["token_ids"].numpy().copy()
    for row, (positions, labels, weights) in enumerate(zip(x["mask_positions"], y, w)):
        for position, label, weight in zip(positions.numpy(), labels.numpy(), weights.numpy()):
            if weight:
                restored[row, position] = label
    np.testing.assert_array_equal(restored, ids.numpy())


def test_masked_lm_seeds(wordpiece):
    pre = MaskedLMPreprocessor(wordpiece, sequence_length=12, mask_rate=0.3, seed=5)
    texts = ["the cat sat on the mat"] * 4
    a, b = pre(texts, seed=3), pre(texts, seed=3)
    np.testing.assert_array_equal(a[0]["mask_positions"], b[0]["mask_positions"])
    # Without a seed each call draws fresh masks (dynamic masking over epochs).
    draws = {pre(texts)[0]["mask_positions"].numpy().tobytes() for _ in range(4)}
    assert len(draws) > 1


# ------------------------------------------------------------------------------- seq2seq
def test_seq2seq_batches_equal_the_pipeline(byte_bpe, french_bpe):
    # Each side with its own tokenizer (a shared one is the same code with one tokenizer).
    target = french_bpe
    sources = FUZZ[2:]
    targets = [*FR, *FR, *FR][: len(sources) - 1] + [" ".join(FR * 5)]
    keep = [
        i
        for i, (s, t) in enumerate(zip(sources, targets))
        if _tokenized(byte_bpe, [s]) and _tokenized(target, [t])
    ]
    pairs = [(sources[i], targets[i]) for i in keep]
    ds, _ = kd.seq2seq_dataset(pairs, byte_bpe, target, 9, 7, batch_size=len(pairs), shuffle=False)
    want = next(iter(ds))
    pre = Seq2SeqLMPreprocessor(
        byte_bpe,
        encoder_sequence_length=9,
        decoder_sequence_length=7,
        target_tokenizer=target,
        pad_to_sequence_length=True,
    )
    got = pre([p[0] for p in pairs], [p[1] for p in pairs])
    for key in want[0]:
        np.testing.assert_array_equal(got[0][key].numpy(), want[0][key].numpy())
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
    np.testing.assert_array_equal(got[2].numpy(), want[2].numpy())
    # KerasHub's dict form gives the same.
    again = pre({"encoder_text": [p[0] for p in pairs], "decoder_text": [p[1] for p in pairs]})
    np.testing.assert_array_equal(again[1].numpy(), got[1].numpy())
    # The last pair's long target: `[start] t` in, `t [end]` out, `t` cut to 6 tokens.
    tokens = target.tokenize(pairs[-1][1]).numpy().tolist()[:6]
    assert got[0]["decoder_token_ids"].numpy()[-1].tolist() == [target.start_id, *tokens]
    assert got[1].numpy()[-1].tolist() == [*tokens, target.end_id]


def test_seq2seq_sources_equal_the_export_framing(byte_bpe):
    pre = Seq2SeqLMPreprocessor(byte_bpe, sequence_length=9)
    got = pre.frame_sources(FUZZ)
    ids, mask, empty = encode(byte_bpe, tf.constant(FUZZ), 9)
    np.testing.assert_array_equal(got["encoder_token_ids"].numpy(), ids.numpy())
    np.testing.assert_array_equal(got["encoder_padding_mask"].numpy(), mask.numpy())
    np.testing.assert_array_equal(got["is_empty"].numpy(), empty.numpy())
    assert set(pre.generate_preprocess(FUZZ)) == {"encoder_token_ids", "encoder_padding_mask"}


@pytest.fixture(scope="module")
def seq2seq_lm(byte_bpe, french_bpe):
    keras.utils.set_random_seed(4)
    config = tiny_config("learned_postnorm", num_layers=1, max_sequence_length=16)
    model = Seq2SeqLM(EncoderDecoder(**{**config, "vocabulary_size": byte_bpe.vocabulary_size}))
    model.preprocessor = Seq2SeqLMPreprocessor(
        byte_bpe, sequence_length=12, target_tokenizer=french_bpe
    )
    return model


def test_seq2seq_generate_from_text_equals_the_exported_signature(seq2seq_lm, byte_bpe, french_bpe):
    module = Seq2SeqServing(seq2seq_lm, byte_bpe, french_bpe, source_length=12, max_length=6)
    served = module.signatures()["serving_default"](text=tf.constant(FUZZ))["translation"]
    served = [s.decode("utf-8") for s in served.numpy()]
    texts = seq2seq_lm.generate(FUZZ, max_new_tokens=6)
    assert texts == served
    assert texts[0] == ""  # a source without tokens translates to nothing, as served
    assert seq2seq_lm.generate(FUZZ[2], max_new_tokens=6) == served[2]
    assert seq2seq_lm.generate([], max_new_tokens=6) == []


# --------------------------------------------------------------- contexts and serialization
def test_same_ids_eagerly_and_in_tf_data(byte_bpe):
    # Graph mode is covered by the SavedModel test below; this is the `tf.data` map.
    causal = CausalLMPreprocessor(byte_bpe, sequence_length=10)
    seq2seq = Seq2SeqLMPreprocessor(byte_bpe, sequence_length=10)
    masked = MaskedLMPreprocessor(byte_bpe, sequence_length=10)

    def everything(texts):
        return causal(texts), seq2seq(texts, texts), masked(texts, seed=[1, 2])

    eager = everything(tf.constant(FUZZ))
    mapped = tf.data.Dataset.from_tensor_slices(FUZZ).batch(len(FUZZ)).map(everything)
    for a, b in zip(tf.nest.flatten(eager), tf.nest.flatten(next(iter(mapped)))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_preprocessors_run_inside_a_saved_model(tmp_path, byte_bpe, french_bpe):
    # (The exported generation signatures above run the prompt and source framing in graphs.)
    seq2seq = Seq2SeqLMPreprocessor(byte_bpe, sequence_length=10, target_tokenizer=french_bpe)
    texts = tf.TensorSpec([None], tf.string)
    module = tf.Module()
    module.tokenizers = [byte_bpe, french_bpe]  # tracked: their resources are saved
    module.seq2seq = tf.function(lambda s, t: seq2seq(s, t), input_signature=[texts, texts])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    batch = tf.constant(FUZZ)
    served, eager = loaded.seq2seq(batch, batch), seq2seq(batch, batch)
    for a, b in zip(tf.nest.flatten(served), tf.nest.flatten(eager)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_round_trip_generates_identically_from_strings(
    tmp_path, causal_lm, seq2seq_lm, french_bpe
):
    prompts = ["the cat", "", "héllo 😀"]
    for model, kwargs in [(causal_lm, {}), (seq2seq_lm, {})]:
        before = model.generate(prompts, max_new_tokens=4, **kwargs)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded.preprocessor) is type(model.preprocessor)
        assert loaded.preprocessor.get_config() == model.preprocessor.get_config()
        assert loaded.generate(prompts, max_new_tokens=4, **kwargs) == before
    # The separate target tokenizer came back as the target side's.
    loaded_target = loaded.preprocessor.target_tokenizer
    assert loaded_target.get_vocabulary() == french_bpe.get_vocabulary()
    assert loaded.preprocessor.tokenizer.get_vocabulary() != french_bpe.get_vocabulary()


@pytest.mark.slow  # ~15 s: two compiles and fits; the layouts are checked against the pipelines
def test_fit_on_text_for_every_generative_task(wordpiece, byte_bpe):
    config = tiny_config("learned_postnorm", num_layers=1, max_sequence_length=16)
    mlm = MaskedLM(
        Encoder(**{**config, "vocabulary_size": wordpiece.vocabulary_size, "pooler": False})
    )
    mlm.preprocessor = MaskedLMPreprocessor(wordpiece, sequence_length=16)
    seq2seq = Seq2SeqLM(EncoderDecoder(**{**config, "vocabulary_size": byte_bpe.vocabulary_size}))
    seq2seq.preprocessor = Seq2SeqLMPreprocessor(byte_bpe, sequence_length=16)
    # (A causal LM takes texts alone, as a masked LM: the same `fit` path.)
    for model, args in [(mlm, (EN,)), (seq2seq, (EN, FR + FR[:1]))]:
        model.compile()
        history = model.fit(*args, epochs=1, batch_size=2, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_bad_arguments_are_named(wordpiece, byte_bpe):
    with pytest.raises(ValueError, match="labels are the texts' next tokens"):
        CausalLMPreprocessor(byte_bpe)(["a"], ["b"])
    with pytest.raises(ValueError, match="labels are the masked tokens"):
        MaskedLMPreprocessor(wordpiece)(["a"], [1])
    with pytest.raises(ValueError, match="needs target texts"):
        Seq2SeqLMPreprocessor(byte_bpe)(["a"])
    with pytest.raises(ValueError, match="'encoder_text' and 'decoder_text'"):
        Seq2SeqLMPreprocessor(byte_bpe)({"encoder_text": ["a"]})
    with pytest.raises(ValueError, match="`decoder_sequence_length` must be an int >= 2"):
        Seq2SeqLMPreprocessor(byte_bpe, decoder_sequence_length=1)
    with pytest.raises(ValueError, match="`mask_rate` must be in"):
        MaskedLMPreprocessor(wordpiece, mask_rate=1.5)
    roles = {"pad": "<|pad|>", "start": "<|start|>", "end": "<|end|>"}  # no mask token
    no_mask = kt.train_byte_bpe(EN * 10, vocabulary_size=270, special_tokens=roles)
    with pytest.raises(ValueError, match="needs a tokenizer with a mask token"):
        MaskedLMPreprocessor(no_mask)
    with pytest.raises(ValueError, match="`seed` must be an int or a shape-\\(2,\\)"):
        MaskedLMPreprocessor(wordpiece)(["a"], seed=[1, 2, 3])
    with pytest.raises(TypeError, match="`x` must be strings"):
        CausalLMPreprocessor(byte_bpe)(["a", 3])


def test_bundle_load_attaches_the_preprocessor(tmp_path, seq2seq_lm, byte_bpe, french_bpe):
    from kerasllm import bundle

    sources = ["the cat", "", "héllo 😀"]
    want = seq2seq_lm.generate(sources, max_new_tokens=4)
    roles = {"source": byte_bpe, "target": french_bpe}
    loaded = bundle.load(bundle.Bundle(seq2seq_lm, roles).save(tmp_path / "saved")).model
    pre = loaded.preprocessor
    assert isinstance(pre, Seq2SeqLMPreprocessor)
    assert pre.encoder_sequence_length == 12  # the saved preprocessor's options are kept
    assert pre.target_tokenizer.get_vocabulary() == french_bpe.get_vocabulary()
    assert loaded.generate(sources, max_new_tokens=4) == want
    # A model bundled without a preprocessor gets the task's default one.
    bare = Seq2SeqLM.from_config({**seq2seq_lm.get_config(), "preprocessor": None})
    bare.set_weights(seq2seq_lm.get_weights())
    loaded = bundle.load(bundle.Bundle(bare, roles).save(tmp_path / "bare")).model
    assert loaded.preprocessor.encoder_sequence_length == 16  # the model's positions
    assert loaded.preprocessor.target_tokenizer.get_vocabulary() == french_bpe.get_vocabulary()


def test_shipped_translation_model_translates_text():
    # The shipped model (package data, ~10 s): the issue's `bundle.load(path).model.generate`.
    import pathlib

    import kerasllm
    from kerasllm import bundle, zoo

    sentence = "In the beginning God created the heavens and the earth."
    want = "Au commencement, Dieu créa les cieux et la terre."  # examples/translate.py's output
    folder = pathlib.Path(kerasllm.__file__).parent / "zoo" / "shipped" / "translate_en_fr"
    assert bundle.load(folder).model.generate(sentence) == want
    assert zoo.get("translate_en_fr").generate([sentence, ""]) == [want, ""]
