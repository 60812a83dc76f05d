"""Hardening (issue 23): out-of-range ids, model/tokenizer vocabulary agreement, confined and
atomically written tokenizer files, and parse errors that name the file.

The cases that used to kill the process (WordPiece's detokenizer reading out of bounds, a model
generating ids its tokenizer does not have) run in a subprocess whose exit code is asserted.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.models import CausalLM, Decoder, EncoderDecoder, Seq2SeqLM
from kerasllm.testing import tiny_config
from kerasllm.tokenizers.base import check_vocabulary_match

TEXTS = ["the cat sat on the mat", "a dog ran to the cat", "le chat est assis"] * 10


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.fixture(scope="module")
def small():
    """One tiny tokenizer of each kind."""
    return {
        "wordpiece": kt.train_wordpiece(TEXTS, 60),
        "sentencepiece": kt.train_sentencepiece(TEXTS, 290),
        "byte_bpe": kt.train_byte_bpe(TEXTS, 270),
    }


# ------------------------------------------------------------------ out-of-range ids
def test_wordpiece_out_of_range_ids_raise_instead_of_crashing():
    # tensorflow-text's FastWordpiece detokenizer reads its table without a bounds check: -1 or
    # vocabulary_size used to end the process with a segfault (exit 139), eagerly and in an
    # exported SavedModel alike.
    proc = _run(
        """
        import tempfile
        import tensorflow as tf
        import kerasllm.tokenizers as kt

        tok = kt.train_wordpiece(["the cat sat on the mat", "a dog ran"] * 10, 60)
        size = tok.vocabulary_size
        for bad in ([-1], [size], [[4, size + 1000]]):
            try:
                tok.detokenize(bad)
                print("EAGER accepted", bad)
            except ValueError as error:
                print("EAGER", error)

        class Detokenizer(tf.Module):
            def __init__(self, tokenizer):
                super().__init__()
                self.tokenizer = tokenizer

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
            def detokenize(self, ids):
                return {"text": self.tokenizer.detokenize(ids)}

        module = Detokenizer(tok)
        path = tempfile.mkdtemp()
        tf.saved_model.save(module, path, signatures={"detokenize": module.detokenize})
        served = tf.saved_model.load(path).signatures["detokenize"]
        print("GOOD", served(ids=tf.constant([[5, 6]]))["text"].numpy().tolist())
        for bad in ([[-1]], [[size]]):
            try:
                served(ids=tf.constant(bad))
                print("GRAPH accepted", bad)
            except tf.errors.InvalidArgumentError as error:
                print("GRAPH", " ".join(error.message.split()))
        """
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    eager = [line for line in lines if line.startswith("EAGER")]
    graph = [line for line in lines if line.startswith("GRAPH")]
    assert len(eager) == 3 and len(graph) == 2, proc.stdout
    assert all(
        "`ids` holds token ids outside the vocabulary [0, " in line for line in eager + graph
    ), lines
    assert "[-1]" in eager[0] and any(line.startswith("GOOD [b'") for line in lines)


@pytest.mark.parametrize("kind", ["sentencepiece", "byte_bpe"])
def test_out_of_range_ids_raise_the_same_clear_error(small, kind):
    # SentencePiece used to raise an opaque OutOfRangeError, byte BPE to drop the id silently.
    tok = small[kind]
    size = tok.vocabulary_size
    message = rf"`ids` holds token ids outside the vocabulary \[0, {size}\):"
    for bad in ([-1], [5, size], [[5], [6, size + 7]]):
        with pytest.raises(ValueError, match=message):
            tok.detokenize(bad)
    # An int64 id beyond int32 must not wrap around into range (2**32 would become the pad id).
    with pytest.raises(ValueError, match=r"\[4294967296\]"):
        tok.detokenize(tf.constant([[5, 2**32]], tf.int64))
    with pytest.raises(TypeError, match="integer token ids"):
        tok.detokenize(np.array([5.0, 6.0]))

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32, 1)])
    def in_graph(ids):
        return tok.detokenize(ids)

    assert in_graph(tf.ragged.constant([[5, 6]], tf.int32)).shape == (1,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        in_graph(tf.ragged.constant([[5], [size]], tf.int32))
    # The boundaries themselves are valid.
    assert tok.detokenize([0, size - 1]).dtype == tf.string
    assert tok.detokenize([]).numpy() == b""


# ------------------------------------------------------------------ vocabulary agreement
def test_model_tokenizer_with_another_vocabulary_is_refused(small):
    tok = small["wordpiece"]
    lm = CausalLM(Decoder(**tiny_config(num_layers=1)))  # 97 ids
    with pytest.raises(ValueError, match=rf"97 ids but the tokenizer .* has {tok.vocabulary_size}"):
        lm.tokenizer = tok
    assert lm.tokenizer is None
    seq2seq = Seq2SeqLM(EncoderDecoder(**tiny_config(num_layers=1)))
    with pytest.raises(ValueError, match="Seq2SeqLM.tokenizer: the model's vocabulary has 97"):
        seq2seq.tokenizer = small["sentencepiece"]
    matched = CausalLM(Decoder(**tiny_config(num_layers=1, vocabulary_size=tok.vocabulary_size)))
    matched.tokenizer = tok
    assert matched.tokenizer is tok
    matched.tokenizer = None  # detaching is always allowed


def test_check_vocabulary_match_checks_every_role(small):
    tok = small["sentencepiece"]
    check_vocabulary_match(tok.vocabulary_size, {"source": tok, "target": tok})
    with pytest.raises(ValueError, match=r"'target' tokenizer \(ByteBPETokenizer\) has 270"):
        check_vocabulary_match(tok.vocabulary_size, {"source": tok, "target": small["byte_bpe"]})
    with pytest.raises(TypeError, match="Cannot tell the vocabulary size"):
        check_vocabulary_match(10, object())


def test_generate_with_a_smaller_tokenizer_is_refused_not_a_segfault():
    # The reproduction: a 50,257-way gpt_tiny with a 60-piece tokenizer used to
    # segfault in generate(..., sampler="random"), which samples ids the tokenizer lacks.
    proc = _run(
        """
        import kerasllm.tokenizers as kt
        from kerasllm import zoo

        tok = kt.train_wordpiece(["the cat sat on the mat", "a dog ran"] * 10, 60)
        model = zoo.get("gpt_tiny", task="causal_lm", weights=None, num_layers=1)
        try:
            model.tokenizer = tok
            print("ASSIGNED")
            print(model.generate(["the cat"], max_new_tokens=8, sampler="random", seed=0))
        except ValueError as error:
            print("REFUSED", error)
        ids = model.generate([[5, 6]], max_new_tokens=8, sampler="random", seed=0)
        try:
            tok.detokenize(ids)
            print("DETOKENIZED")
        except ValueError as error:
            print("DETOKENIZE", error)
        """
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert refused and "50,257 ids" in refused[0], proc.stdout
    assert "CausalLM.tokenizer" in refused[0]
    assert "DETOKENIZE `ids` holds token ids outside the vocabulary [0, " in proc.stdout


# ------------------------------------------------------------------ files
@pytest.mark.parametrize(
    "kind, key", [("wordpiece", "vocabulary"), ("sentencepiece", "model"), ("byte_bpe", "merges")]
)
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_tokenizer_files_must_stay_in_their_folder(small, tmp_path, kind, key, how):
    # A tokenizer.json naming ../../../../etc/passwd made WordPiece load it as its vocabulary
    # (and `kerasllm export` embed it in saved_model.pb).
    folder = tmp_path / "tok"
    small[kind].save(folder)
    config = json.loads((folder / "tokenizer.json").read_text())
    outside = tmp_path / "outside.txt"
    own = folder / config["files"][key]
    outside.write_bytes(own.read_bytes())  # a loadable file: only its place is wrong
    if how == "dotdot":
        name = "../../../../../../../../etc/passwd"
    elif how == "absolute":
        name = str(outside)
    else:
        name = config["files"][key]
        own.unlink()
        own.symlink_to(outside)
    config["files"][key] = name
    (folder / "tokenizer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        kt.load(folder)
    assert repr(name) in str(info.value)  # the offending name
    assert ("is an absolute path" if how == "absolute" else "resolves outside") in str(info.value)


def test_truncated_tokenizer_json_names_the_file(small, tmp_path):
    folder = small["wordpiece"].save(tmp_path / "tok")
    path = Path(folder) / "tokenizer.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path} is not valid JSON"):
        kt.load(folder)


def test_replaced_vocabulary_file_is_detected(small, tmp_path):
    folder = small["wordpiece"].save(tmp_path / "tok")
    vocab = Path(folder) / "vocab.txt"
    lines = vocab.read_text(encoding="utf-8").splitlines()
    vocab.write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="records vocabulary_size=.* hold .* tokens"):
        kt.load(folder)


def test_failed_save_leaves_the_previous_files_whole(small, tmp_path, monkeypatch):
    tok = small["wordpiece"]
    folder = Path(tok.save(tmp_path / "tok"))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    # A config that fails to serialize half-way: written in place, tokenizer.json was left
    # truncated (and unloadable); written beside and renamed, it is untouched.
    config = tok.get_config()
    monkeypatch.setattr(tok, "get_config", lambda: {**config, "zzz": object()})
    with pytest.raises(TypeError):
        tok.save(folder)
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert after == before  # no partial file, no temporary file left behind
    assert kt.load(folder).tokenize("the cat").numpy().tolist() == (
        tok.tokenize("the cat").numpy().tolist()
    )


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece", "byte_bpe"])
def test_corrupt_files_are_named(small, tmp_path, kind):
    folder = Path(small[kind].save(tmp_path / "tok"))
    files = json.loads((folder / "tokenizer.json").read_text())["files"]
    key = "model" if kind == "sentencepiece" else "vocabulary"
    path = folder / files[key]
    data = path.read_bytes()
    # Half a SentencePiece proto used to fail with sentencepiece's bare "ParseFromArray"; an
    # invalid UTF-8 vocabulary with a UnicodeDecodeError naming no file.
    path.write_bytes(data[: len(data) // 2] if kind == "sentencepiece" else b"\xff\xfe" + data)
    with pytest.raises(ValueError, match=rf"{path} is not (a SentencePiece model|UTF-8 text)"):
        kt.load(folder)
    if kind == "sentencepiece":
        with pytest.raises(ValueError, match="empty SentencePiece model"):
            kt.SentencePieceTokenizer(b"")
