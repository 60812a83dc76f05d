import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.testing import assert_round_trip

KINDS = ["wordpiece", "sentencepiece_unigram", "sentencepiece_bpe", "byte_bpe"]


def _strings(t):
    return [s.decode("utf-8") for s in t.numpy()]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_on_every_kind_of_text(tokenizers, corpus_samples, kind):
    assert_round_trip(tokenizers[kind], corpus_samples, kind)


def test_normalize_definitions(tokenizers):
    assert tokenizers["wordpiece"].normalize("Héllo, World!").numpy() == b"hello , world !"
    assert tokenizers["byte_bpe"].normalize(" a  b\n").numpy() == b" a  b\n"
    sp = tokenizers["sentencepiece_unigram"]
    assert sp.normalize("  a \t b  ").numpy() == b"a b"
    # Byte fallback: characters never seen in training still round-trip.
    text = "Ωμέγα ☃ 日本"
    assert _strings(sp.detokenize(sp.tokenize([text]))) == [text]


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok.special_token_ids
    assert tok.pad_id == 0 == ids["pad"]
    assert tok.mask_id is not None and tok.start_id is not None and tok.end_id is not None
    for role in kt.SPECIAL_ROLES:
        assert getattr(tok, f"{role}_id") == ids.get(role)
    for role, token in tok.special_tokens.items():
        if role == "pad" or (role == "unk" and kind.startswith("sentencepiece")):
            continue  # SentencePiece's <pad>/<unk> are not matched in text
        out = tok.tokenize(f"the {token} end").numpy().tolist()
        assert out.count(ids[role]) == 1, (role, token, out)
        alone = [i for i in tok.tokenize(token).numpy().tolist() if tok.id_to_token(i) != "\u2581"]
        assert alone == [ids[role]], (role, alone)  # (SentencePiece may add a lone "▁")
        assert tok.id_to_token(ids[role]) == token and tok.token_to_id(token) == ids[role]


def test_special_token_roles_per_kind(tokenizers):
    wp = tokenizers["wordpiece"]
    assert (wp.start_id, wp.end_id) == (wp.cls_id, wp.sep_id)
    bpe = tokenizers["byte_bpe"]
    assert bpe.unk_id is None and bpe.cls_id is None
    sp = tokenizers["sentencepiece_unigram"]
    assert sp.special_token_ids == {
        "pad": 0, "unk": 1, "start": 2, "end": 3, "mask": 4, "cls": 5, "sep": 6
    }  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_padded_scalar_and_detokenize_variants(tokenizers, kind):
    tok = tokenizers[kind]
    texts = ["In the beginning God created the heavens.", "And the earth."]
    ragged = tok.tokenize(texts)
    assert isinstance(ragged, tf.RaggedTensor) and ragged.dtype == tf.int32
    dense = tok.tokenize(texts, sequence_length=40)
    assert dense.shape == (2, 40) and dense.dtype == tf.int32
    np.testing.assert_array_equal(dense[1, : ragged[1].shape[0]], ragged[1])
    assert np.all(dense[1, ragged[1].shape[0] :].numpy() == 0)
    single = tok.tokenize(texts[0])
    assert single.shape.rank == 1
    np.testing.assert_array_equal(single, ragged[0])
    assert _strings(tok.detokenize(dense)) == _strings(tok.detokenize(ragged))
    assert tok.detokenize(single).numpy() == tok.detokenize(ragged)[0].numpy()
    framed = tf.concat([[tok.start_id], single, [tok.end_id]], 0)
    assert (
        tok.detokenize(framed, skip_special_tokens=True).numpy() == tok.detokenize(single).numpy()
    )
    assert tok.vocabulary_size == len(tok.get_vocabulary())


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_identical_ids(tokenizers, corpus_samples, kind, tmp_path):
    tok = tokenizers[kind]
    path = tok.save(tmp_path / kind)
    config = json.loads((tmp_path / kind / "tokenizer.json").read_text())
    assert config["kind"] == tok.kind and config["special_token_ids"]["pad"] == 0
    assert set(config["files"].values()) <= set(os.listdir(path))
    loaded = kt.load(path)
    assert type(loaded) is type(tok)
    assert loaded.get_config() == tok.get_config()
    sample = corpus_samples["french"][:50] + corpus_samples["tweets"][:50]
    assert tok.tokenize(sample).to_list() == loaded.tokenize(sample).to_list()


@pytest.mark.parametrize("kind", KINDS)
def test_runs_in_tf_function_and_tf_data(tokenizers, kind):
    tok = tokenizers[kind]
    texts = ["the word of the lord", "a fresh film", "Un jour"]

    @tf.function
    def round_trip(x):
        return tok.detokenize(tok.tokenize(x, sequence_length=16))

    assert _strings(round_trip(tf.constant(texts))) == _strings(tok.normalize(texts))
    ds = tf.data.Dataset.from_tensor_slices(texts).map(tok.tokenize)
    eager = tok.tokenize(texts).to_list()
    assert [x.numpy().tolist() for x in ds] == eager
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(tok.tokenize)
    assert [r for b in ds for r in b.to_list()] == eager


def test_saved_model_loads_without_kerasllm(tokenizers, tmp_path):
    texts = ["In the beginning God created the heavens and the earth.", "Quel film ! [MASK]"]
    expected = {}
    for kind, tok in tokenizers.items():

        class Export(tf.Module):
            def __init__(self, tokenizer):
                super().__init__()
                self.tokenizer = tokenizer

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def serve(self, text):
                ids = self.tokenizer.tokenize(text, sequence_length=64)
                return {"ids": ids, "text": self.tokenizer.detokenize(ids)}

        module = Export(tok)
        tf.saved_model.save(module, str(tmp_path / kind), signatures={"serve": module.serve})
        out = module.serve(tf.constant(texts))
        expected[kind] = {"ids": out["ids"].numpy().tolist(), "text": _strings(out["text"])}
        # No Python callbacks may hide in the graph.
        with open(tmp_path / kind / "saved_model.pb", "rb") as f:
            raw = f.read()
        assert b"PyFunc" not in raw and b"EagerPyFunc" not in raw, kind
    script = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf, tensorflow_text  # noqa: F401
        out = {{}}
        for kind in {list(tokenizers)!r}:
            fn = tf.saved_model.load({str(tmp_path)!r} + "/" + kind).signatures["serve"]
            res = fn(tf.constant({texts!r}))
            out[kind] = {{"ids": res["ids"].numpy().tolist(),
                         "text": [s.decode() for s in res["text"].numpy()]}}
        assert "kerasllm" not in sys.modules and "keras_hub" not in sys.modules
        print("RESULT" + json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][0]
    assert json.loads(line[len("RESULT") :]) == expected


def test_wordpiece_options():
    texts = ["Héllo Wörld 你好", "hello world"] * 5
    cased = kt.train_wordpiece(texts, 80, lowercase=False, strip_accents=False)
    assert cased.normalize("Héllo 你好").numpy().decode() == "Héllo 你 好"
    assert cased.id_to_token(int(cased.tokenize("Héllo")[0])) == "Héllo"
    uncased = kt.train_wordpiece(texts, 80)
    assert uncased.detokenize(uncased.tokenize("HÉLLO")).numpy() == b"hello"
    assert uncased.tokenize("你好").shape == (2,)  # CJK characters are split


def test_wordpiece_normalizes_like_bert():
    # The Python reference is BERT's BasicTokenizer: delete control/format characters,
    # str.lower() (not case folding), then NFD and drop combining marks.
    tok = kt.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    cases = {
        "Straße ﬁne…": "straße ﬁne …",  # case folding would give "strasse fine ..."
        "zero\u200bwidth soft\u00adhyphen": "zerowidth softhyphen",  # deleted, not a break
        "한국": "\u1112\u1161\u11ab\u1100\u116e\u11a8",  # NFD jamo stay decomposed
        "ΣΟΦΟΣ Crème\tBrûlée": "σοφος creme brulee",
        "Keep [CLS] and [MASK]x": "keep [CLS] and [MASK] x",  # special tokens keep their case
    }
    got = [s.decode() for s in tok.normalize(list(cases)).numpy()]
    assert got == list(cases.values())
    cased = kt.WordPieceTokenizer(tok.get_vocabulary(), lowercase=False, strip_accents=False)
    assert cased.normalize("Crème\x00 Brû\ufffdlée").numpy().decode() == "Crème Brûlée"


def test_byte_bpe_trainer_is_deterministic_and_sized():
    texts = ["low lower lowest newer newest wider"] * 20 + ["a b c"]
    a = kt.train_byte_bpe(texts, 270)
    b = kt.train_byte_bpe(list(reversed(texts)), 270)
    assert a.merges == b.merges and a.vocabulary_size == 270
    # Merging stops once no pair occurs twice: the vocabulary may come out smaller.
    assert kt.train_byte_bpe(texts, 400).vocabulary_size < 400
    assert a.tokenize(" lowest").shape[0] < len(" lowest")  # merges are applied


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="vocabulary_size"):
        kt.train_wordpiece(["a b"], 3)
    with pytest.raises(ValueError, match="model_type"):
        kt.train_sentencepiece(["a b"], 500, model_type="char")
    with pytest.raises(ValueError, match="roles"):
        kt.train_byte_bpe(["a b"], 300, special_tokens={"pad": "<p>", "bogus": "<b>"})
    with pytest.raises(ValueError, match="pad"):
        kt.WordPieceTokenizer(["[UNK]", "[PAD]"], special_tokens={"pad": "[PAD]", "unk": "[UNK]"})
    with pytest.raises(ValueError, match="No non-empty"):
        kt.train_sentencepiece(["  ", ""], 500)
    with pytest.raises(FileNotFoundError):
        kt.load("/nonexistent/dir")


def test_sentencepiece_sampling_varies_segmentation_not_text(tokenizers, corpus_samples, tmp_path):
    tok = tokenizers["sentencepiece_unigram"]
    noisy = tok.with_sampling(alpha=0.1, nbest_size=-1)
    assert tok.sampling is None and noisy.sampling == {"alpha": 0.1, "nbest_size": -1}
    texts = corpus_samples["french"][:40]
    best = tok.tokenize(texts).to_list()
    draws = [noisy.tokenize(texts).to_list() for _ in range(3)]
    # Other segmentations (longer on average: the most likely one uses the fewest pieces
    # here), yet every one detokenizes to the same normalized text.
    assert all(draw != best for draw in draws) and draws[0] != draws[1]
    assert sum(map(len, draws[0])) > sum(map(len, best))
    expected = _strings(tok.normalize(texts))
    for draw in draws:
        assert _strings(tok.detokenize(tf.ragged.constant(draw, tf.int32))) == expected
    # Special tokens stay whole; the sampling copy saves as the deterministic tokenizer.
    for _ in range(5):
        assert noisy.tokenize("<mask> Dieu").numpy().tolist().count(tok.mask_id) == 1
    assert kt.load(noisy.save(tmp_path / "noisy")).tokenize(texts).to_list() == best
    # In tf.data, each pass draws anew (training epochs see other segmentations).
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(8).map(noisy.tokenize)
    epochs = [[r for b in ds for r in b.to_list()] for _ in range(2)]
    assert epochs[0] != epochs[1]
    for alpha, nbest in ((0.0, 64), (-1.0, 64), (0.1, 1), (0.1, 0), (0.1, -2)):
        with pytest.raises(ValueError, match="alpha" if alpha <= 0 else "nbest_size"):
            tok.with_sampling(alpha=alpha, nbest_size=nbest)
