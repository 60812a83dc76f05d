import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import (
    BAD_INPUTS,
    BEAMS,
    CAUSAL_MAX_LENGTH,
    GOOD_INPUTS,
    SEQ2SEQ_MAX_LENGTH,
    TAGS,
    tiny,
)

from kerasllm import bundle, tokenizers
from kerasllm.cli import main
from kerasllm.data import boundary_ids, token_classification_dataset
from kerasllm.export import (
    TENSORFLOW_TEXT_OPS,
    existing_versions,
    export,
    graph_ops,
    non_core_ops,
    python_ops,
)
from kerasllm.generation import BeamSampler
from kerasllm.layers.attention import core_tf_cache_writes, write_cache
from kerasllm.models import Decoder, Encoder
from kerasllm.preprocessors import TextClassifierPreprocessor

SIGNATURES = {
    "seq2seq": {
        "serving_default": ({"text": "DT_STRING"}, {"translation": "DT_STRING"}),
        "translate_max_length": (
            {"text": "DT_STRING", "max_length": "DT_INT32"},
            {"translation": "DT_STRING"},
        ),
        "translate_beam": (
            {"text": "DT_STRING"},
            {"translation": "DT_STRING", "score": "DT_FLOAT"},
        ),
        "translate_token_ids": (
            {"token_ids": "DT_INT32", "padding_mask": "DT_INT32"},
            {"token_ids": "DT_INT32", "lengths": "DT_INT32"},
        ),
    },
    "causal": {
        "serving_default": ({"prompt": "DT_STRING"}, {"completion": "DT_STRING"}),
        "generate_sampled": (
            {
                "prompt": "DT_STRING",
                "max_new_tokens": "DT_INT32",
                "temperature": "DT_FLOAT",
                "top_k": "DT_INT32",
                "top_p": "DT_FLOAT",
                "seed": "DT_INT32",
            },
            {"completion": "DT_STRING"},
        ),
        "generate_token_ids": (
            {"token_ids": "DT_INT32", "padding_mask": "DT_INT32", "max_new_tokens": "DT_INT32"},
            {"token_ids": "DT_INT32", "lengths": "DT_INT32"},
        ),
    },
    "classifier": {
        "serving_default": (
            {"text": "DT_STRING"},
            {"probabilities": "DT_FLOAT", "class_id": "DT_INT32", "label": "DT_STRING"},
        ),
        "classify_pairs": (
            {"text_a": "DT_STRING", "text_b": "DT_STRING"},
            {"probabilities": "DT_FLOAT", "class_id": "DT_INT32", "label": "DT_STRING"},
        ),
        "embed": ({"text": "DT_STRING"}, {"embedding": "DT_FLOAT"}),
        "classify_token_ids": (
            {"token_ids": "DT_INT32", "padding_mask": "DT_INT32"},
            {"probabilities": "DT_FLOAT", "class_id": "DT_INT32", "label": "DT_STRING"},
        ),
    },
    "tagger": {
        "serving_default": (
            {"text": "DT_STRING"},
            {
                "words": "DT_STRING",
                "labels": "DT_STRING",
                "class_ids": "DT_INT32",
                "probabilities": "DT_FLOAT",
            },
        ),
        "classify_token_ids": (
            {"token_ids": "DT_INT32", "padding_mask": "DT_INT32"},
            {"labels": "DT_STRING", "class_ids": "DT_INT32", "probabilities": "DT_FLOAT"},
        ),
    },
}
FAMILIES = list(SIGNATURES)
#: Rank of each signature input by name (the others are scalars).
INPUT_RANKS = {"text": 1, "text_a": 1, "text_b": 1, "prompt": 1, "token_ids": 2, "padding_mask": 2}


def _parse_cli(text):
    """`{signature: ({input: (dtype, shape)}, {output: (dtype, shape)})}` from saved_model_cli."""
    parsed = {}
    for block in re.split(r"signature_def\['", text)[1:]:
        name = block[: block.index("'")]
        inputs_part, _, outputs_part = block.partition(
            "The given SavedModel SignatureDef contains the following output(s):"
        )

        def entries(part):
            return {
                m.group(1): (m.group(2), m.group(3))
                for m in re.finditer(
                    r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\)|unknown_rank)",
                    part,
                )
            }

        parsed[name] = (entries(inputs_part), entries(outputs_part))
    return parsed


@pytest.fixture(scope="module")
def saved_model_cli_output(families):
    """`saved_model_cli show --all` of each export; the three processes run side by side."""
    cli = Path(sys.executable).with_name("saved_model_cli")
    processes = {
        family: subprocess.Popen(
            [str(cli), "show", "--all", "--dir", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for family, (_, path) in families.items()
    }
    outputs = {}
    for family, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        outputs[family] = stdout
    return outputs


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_model_cli_lists_signatures(saved_model_cli_output, family):
    listed = _parse_cli(saved_model_cli_output[family])
    expected = SIGNATURES[family]
    assert set(listed) - {"__saved_model_init_op"} == set(expected)
    for name, (inputs, outputs) in expected.items():
        got_inputs, got_outputs = listed[name]
        assert {k: v[0] for k, v in got_inputs.items()} == inputs, name
        assert {k: v[0] for k, v in got_outputs.items()} == outputs, name
        for key, (_, shape) in got_inputs.items():
            rank = INPUT_RANKS.get(key, 0)
            assert shape == ("()" if rank == 0 else "(" + ", ".join(["-1"] * rank) + ")"), (
                name,
                key,
                shape,
            )
        for key, (_, shape) in got_outputs.items():
            assert shape.startswith("(-1"), (name, key, shape)  # batch dimension first


def test_fresh_process_loads_without_kerasllm(served):
    # The script blocks kerasllm and keras_hub imports; it ran, and nothing slipped in.
    assert served["modules"] == []


def _translate_in_process(item, texts, sampler="greedy"):
    tok = item.tokenizers["source"]
    rows = [r or [0] for r in tok.tokenize(texts).to_list()]
    ids = item.model.generate(
        rows,
        max_new_tokens=SEQ2SEQ_MAX_LENGTH,
        sampler=sampler,
        stop_token_ids=[tok.end_id],
        start_id=tok.start_id,
    )
    strings = tok.detokenize(np.asarray(ids), skip_special_tokens=True).numpy()
    # As `TextToText` does: the served graph strips the same (Unicode) whitespace, such as
    # U+001F or U+00A0, which a random tiny model may well generate.
    return ids, [s.decode("utf-8", errors="replace").strip() for s in strings]


def test_seq2seq_export_reproduces_the_model(families, served):
    item, _ = families["seq2seq"]
    _, greedy = _translate_in_process(item, GOOD_INPUTS)
    assert served["seq2seq"]["serving_default"]["good"]["translation"] == greedy
    _, beam = _translate_in_process(item, GOOD_INPUTS, BeamSampler(BEAMS))
    assert served["seq2seq"]["translate_beam"]["good"]["translation"] == beam
    # Token ids in, token ids out: the same ids `generate` returns (end token kept).
    ids = item.model.generate(
        [[5, 6, 7, 8], [9, 10]], max_new_tokens=SEQ2SEQ_MAX_LENGTH, stop_token_ids=[3], start_id=2
    )
    out = served["seq2seq"]["token_ids"]
    for row, got, length in zip(ids, out["token_ids"], out["lengths"]):
        assert got[:length] == [int(t) for t in row if t != 0][:length]
        assert all(t == 0 for t in got[length:])


def test_seq2seq_max_length_input_bounds_the_output(families, served):
    item, _ = families["seq2seq"]
    tok = item.tokenizers["target"]
    for text in served["seq2seq"]["translate_max_length"]["good"]["translation"]:
        assert len(tok.tokenize(text).numpy()) <= 5 + 2  # 5 tokens; detokenize may re-split


def test_causal_export_reproduces_the_model(families, served):
    item, _ = families["causal"]
    tok = item.tokenizers["text"]
    item.model.tokenizer = tok
    want = item.model.generate(GOOD_INPUTS, max_new_tokens=CAUSAL_MAX_LENGTH, strip_prompt=True)
    assert served["causal"]["serving_default"]["good"]["completion"] == want
    # Temperature 0 in the sampled signature is greedy decoding (capped at 4 tokens there).
    short = item.model.generate(GOOD_INPUTS, max_new_tokens=4, strip_prompt=True)
    assert served["causal"]["generate_sampled"]["good"]["completion"] == short
    ids = item.model.generate([[5, 6, 7, 8], [9, 10]], max_new_tokens=4, stop_token_ids=None)
    out = served["causal"]["token_ids"]
    assert out["lengths"] == [4, 4]
    assert out["token_ids"][0][:4] == ids[0, 4:8].tolist()
    assert out["token_ids"][1][:4] == ids[1, 2:6].tolist()


def test_classifier_export_reproduces_the_model(families, served):
    item, _ = families["classifier"]
    tok = item.tokenizers["text"]
    first, last = boundary_ids(tok)
    rows = [[first, *r, last] for r in tok.tokenize(GOOD_INPUTS).to_list()]
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows], np.int32)
    mask = (ids != 0).astype(np.int32)
    inputs = {"token_ids": ids, "padding_mask": mask}
    probabilities = tf.nn.softmax(item.model(inputs)).numpy()
    got = served["classifier"]["serving_default"]["good"]
    np.testing.assert_allclose(got["probabilities"], probabilities, atol=1e-5)
    names = ["negative", "neutral", "positive"]
    assert got["label"] == [names[i] for i in probabilities.argmax(-1)]
    assert got["class_id"] == probabilities.argmax(-1).tolist()
    pooled = item.model.backbone(inputs)["pooled_output"].numpy()
    np.testing.assert_allclose(
        served["classifier"]["embed"]["good"]["embedding"], pooled, atol=1e-5
    )


#: Sentence pairs the `classify_pairs` signature must classify as `model.predict` does.
PAIR_TEXTS = [
    "",
    "   ",
    "word " * 2000,  # long: both sides truncated (round robin)
    "😀🎉 emoji and café déjà vu",
    "שלום עולם مرحبا",
    "the cat sat on the mat",
    b"invalid \xff\xfe utf-8 \xc3",
]


def test_classifier_pair_signature_equals_predict_on_pairs(families):
    item, path = families["classifier"]
    model = item.model
    classify_pairs = tf.saved_model.load(str(path)).signatures["classify_pairs"]
    # Every ordered pair of the fuzz texts, the long one against short and empty ones included.
    firsts = [a for a in PAIR_TEXTS for _ in PAIR_TEXTS]
    seconds = [b for _ in PAIR_TEXTS for b in PAIR_TEXTS]
    served = classify_pairs(text_a=tf.constant(firsts), text_b=tf.constant(seconds))
    # The preprocessor the export frames with (the bundle's sequence_length of 10), attached
    # for this test only: the model is shared by the session's other export tests.
    preprocessor = TextClassifierPreprocessor(item.tokenizers["text"], sequence_length=10)
    model.preprocessor = preprocessor
    try:
        logits = model.predict((firsts, seconds), batch_size=16, verbose=0)
    finally:
        model.preprocessor = None
    probabilities = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, atol=1e-5)
    assert served["class_id"].numpy().tolist() == probabilities.argmax(-1).tolist()
    names = ["negative", "neutral", "positive"]
    assert [v.decode() for v in served["label"].numpy()] == [
        names[i] for i in probabilities.argmax(-1)
    ]
    # A pair is not its first text alone: the second segment is framed into the inputs (the
    # tiny random model's probabilities are too close to uniform to tell them apart).
    text = "the cat sat on the mat"
    pair, alone = preprocessor(([text], [text])), preprocessor([text])
    assert pair["token_ids"].shape[1] > alone["token_ids"].shape[1]
    assert 1 in pair["segment_ids"].numpy() and 1 not in alone["segment_ids"].numpy()


def test_tagger_export_labels_each_word_as_in_training(families, served):
    item, _ = families["tagger"]
    tok = item.tokenizers["text"]
    words = [text.split() for text in GOOD_INPUTS]
    # The training pipeline's encoding; a word's tag sits on its first sub-word (weight 1).
    data, _ = token_classification_dataset(
        words, [[0] * len(w) for w in words], tok, 10, len(words), shuffle=False
    )
    inputs, _, weights = next(iter(data))
    logits = item.model({k: inputs[k] for k in ("token_ids", "padding_mask")}).numpy()
    got = served["tagger"]["serving_default"]["good"]
    assert [row[: len(w)] for row, w in zip(got["words"], words)] == words
    for row, class_ids, labels, probabilities, w in zip(
        logits, got["class_ids"], got["labels"], got["probabilities"], weights.numpy()
    ):
        want = row[w == 1]  # the words that fit in 10 tokens
        kept = np.asarray(class_ids) >= 0
        assert kept.sum() == len(want) and not kept[len(want) :].any()
        assert np.asarray(class_ids)[kept].tolist() == want.argmax(-1).tolist()
        assert [labels[i] for i in np.flatnonzero(kept)] == [TAGS[i] for i in want.argmax(-1)]
        np.testing.assert_allclose(
            np.asarray(probabilities)[kept], tf.nn.softmax(want).numpy(), atol=1e-5
        )
        assert all(label == "" for label, k in zip(labels, kept) if not k)
    # Client-tokenized input: one label per token.
    ids = np.array([[2, 7, 8, 3], [2, 9, 3, 0]], np.int32)
    per_token = item.model({"token_ids": ids, "padding_mask": (ids != 0).astype(np.int32)})
    out = served["tagger"]["token_ids"]
    assert out["class_ids"][0] == np.argmax(per_token[0], -1).tolist()
    assert out["class_ids"][1] == [*np.argmax(per_token[1, :3], -1).tolist(), -1]


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_inputs_give_well_formed_results(served, family):
    for signature, results in served[family].items():
        if signature == "token_ids":
            continue
        for case, size in (("one", 1), ("sixty_four", 64)):
            outputs = results[case]
            for name, value in outputs.items():
                assert len(value) == size, (signature, case, name)
                if name == "probabilities":
                    # One distribution per input (per classified word for the tagger).
                    want = np.asarray(outputs.get("class_ids", 0)) >= 0
                    np.testing.assert_allclose(np.sum(value, axis=-1), want, atol=1e-5)
                if name in ("probabilities", "embedding", "score"):
                    assert np.isfinite(value).all(), (signature, case, name)
        if family == "seq2seq":
            # Empty and whitespace-only sources translate to "".
            assert results["sixty_four"]["translation"][:2] == ["", ""], signature


def test_no_python_function_ops(families):
    for _, path in families.values():
        assert python_ops(path) == []
        raw = (path / "saved_model.pb").read_bytes()
        assert b"PyFunc" not in raw and b"EagerPyFunc" not in raw


def test_warmup_requests_are_valid_prediction_logs(families):
    prediction_log_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.prediction_log_pb2",
        reason="tensorflow-serving-api (the `serving` extra) parses the warm-up file",
    )
    item, path = families["classifier"]
    loaded = tf.saved_model.load(str(path))
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra/tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(
        SIGNATURES["classifier"]
    )
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "classifier"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(v.shape[0] == 2 for v in outputs.values())


@pytest.fixture(scope="module")
def encoder_export(tmp_path_factory):
    """A bare `Encoder` (mean-pooled embeddings) exported once: `(bundle, version folder)`."""
    tok = tokenizers.train_wordpiece(GOOD_INPUTS * 10, vocabulary_size=50)
    encoder = Encoder(
        vocabulary_size=tok.vocabulary_size,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        pooler=False,
    )
    item = bundle.Bundle(encoder, {"text": tok})
    return item, export(item, tmp_path_factory.mktemp("encoder") / "embedder")


def test_encoder_export_embeds_text(encoder_export):
    item, path = encoder_export
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = serve(text=tf.constant(BAD_INPUTS))["embedding"].numpy()
    assert out.shape == (len(BAD_INPUTS), 8) and np.isfinite(out).all()
    tok = item.tokenizers["text"]
    first, last = boundary_ids(tok)
    row = np.array([[first, *tok.tokenize(["what a good film"]).to_list()[0], last]], np.int32)
    hidden = item.model({"token_ids": row, "padding_mask": np.ones_like(row)})["sequence_output"]
    np.testing.assert_allclose(
        serve(text=tf.constant(["what a good film"]))["embedding"].numpy(),
        tf.reduce_mean(hidden, axis=1).numpy(),
        atol=1e-5,
    )


def test_versions_are_never_overwritten(encoder_export, tmp_path):
    item, first = encoder_export
    base = first.parent
    before = (first / "saved_model.pb").read_bytes()
    saved = str(item.save(tmp_path / "bundle"))
    # The CLI, on the saved bundle folder: the next version, version 1 untouched.
    assert main(["export", "--model", saved, "--out", str(base)]) == 0
    assert existing_versions(base) == [1, 2]
    assert (first / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no staging folder left
    assert (base / "2" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    with pytest.raises(ValueError, match="never overwrites"):
        export(item, base, version=1)


def test_clear_errors(tmp_path, families):
    tok = families["classifier"][0].tokenizers["text"]
    decoder = Decoder(**tiny(vocabulary_size=tok.vocabulary_size))
    with pytest.raises(ValueError, match="Cannot export a Decoder"):
        export(bundle.Bundle(decoder, {"text": tok}), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="not a kerasllm model bundle"):
        export(tmp_path, tmp_path / "y")
    with pytest.raises(ValueError, match="max_length"):
        export(families["seq2seq"][0], tmp_path / "z", max_length=1000)
    assert not (tmp_path / "x").exists() or existing_versions(tmp_path / "x") == []


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--max-length" in capsys.readouterr().out
    assert main(["export", "--model", "/nonexistent/bundle", "--out", "/tmp/never"]) == 2
    assert "error" in capsys.readouterr().err


def test_token_id_signatures_reject_bad_ids_with_clear_errors(families):
    _, path = families["classifier"]
    classify = tf.saved_model.load(str(path)).signatures["classify_token_ids"]
    ones = tf.ones([1, 3], tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocabulary size"):
        classify(token_ids=tf.constant([[2, 10_000, 3]]), padding_mask=ones)
    with pytest.raises(tf.errors.InvalidArgumentError, match="right-padding"):
        classify(token_ids=tf.constant([[0, 2, 3]]), padding_mask=tf.constant([[0, 1, 1]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        classify(token_ids=tf.constant([[2, 3]]), padding_mask=ones)
    assert classify(token_ids=tf.constant([[2, 7, 3]]), padding_mask=ones)["label"].shape == [1]


def test_served_translations_strip_the_whitespace_python_strips():
    # `TextToText` returns `str.strip()`ped text; the served graph must strip the same
    # characters (Unicode spaces, U+001C-U+001F, U+0085), not only ASCII whitespace.
    from kerasllm.export import text as export_text
    from kerasllm.tokenizers import train_byte_bpe

    tokenizer = train_byte_bpe(["a b c"] * 3, vocabulary_size=300)
    spaces = "\x1f\x85\xa0\u2028\u3000\u200a \t\v"
    texts = [f"{spaces}mot{spaces}", f"\u3000dé\xa0jà{chr(0x1C)}", "\u200b\u200bx", spaces]
    ids = tokenizer.tokenize(texts)
    dense = ids.to_tensor()
    ends = tf.cast(ids.row_lengths(), tf.int32)
    starts = tf.zeros_like(ends)
    got = export_text.decode(tokenizer, dense, starts, ends, strip=True).numpy()
    assert [g.decode() for g in got] == [t.strip() for t in texts]
    assert [t.strip() for t in texts][2] == "\u200b\u200bx"  # U+200B is not whitespace


def test_served_whitespace_is_pythons_over_every_code_point():
    # The whitespace class `decode(strip=True)` strips with (via `ids_to_text`).
    from kerasllm.preprocessors.generative import SPACE

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    matched = tf.strings.regex_full_match([c.encode() for c in chars], SPACE)
    differ = [hex(ord(c)) for c, m in zip(chars, matched.numpy()) if bool(m) != c.isspace()]
    assert not differ


#: What `_guarded` says about an input of the wrong rank, by the rank its spec declares.
RANK_RULES = {0: "must be a scalar", 1: "must be a 1-D batch", 2: "must be 2-D"}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_signature_answers_an_empty_batch_with_empty_outputs(served, family):
    checks = served["checks"][family]
    assert set(checks) == set(SIGNATURES[family])
    for signature, check in checks.items():
        # Same outputs and dtypes as a real batch, each with 0 rows.
        assert {k: dtype for k, (_, dtype) in check["empty"].items()} == check["dtypes"]
        for name, (shape, _) in check["empty"].items():
            assert shape[0] == 0, (signature, name, shape)


def test_encoder_signatures_answer_empty_batches_and_reject_wrong_ranks(encoder_export):
    _, path = encoder_export
    signatures = tf.saved_model.load(str(path)).signatures
    embed = signatures["serving_default"]
    assert embed(text=tf.zeros([0], tf.string))["embedding"].shape == [0, 8]
    with pytest.raises(tf.errors.InvalidArgumentError, match="`text` must be a 1-D batch"):
        embed(text=tf.constant([["what a", "good film"]]))
    ids = signatures["embed_token_ids"]
    empty = tf.zeros([0, 3], tf.int32)
    assert ids(token_ids=empty, padding_mask=empty)["embedding"].shape == [0, 8]
    with pytest.raises(tf.errors.InvalidArgumentError, match="`token_ids` must be 2-D"):
        ids(token_ids=tf.ones([1, 2, 3], tf.int32), padding_mask=tf.ones([1, 2, 3], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        ids(token_ids=tf.ones([0, 3], tf.int32), padding_mask=tf.ones([2, 3], tf.int32))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_input_of_the_wrong_rank_is_rejected(served, family):
    # A (1, 2) string batch used to be flattened into 2 rows, and a vector `max_length`
    # reached the decoding loop; each now fails with INVALID_ARGUMENT naming the rule.
    for signature, check in served["checks"][family].items():
        inputs = SIGNATURES[family][signature][0]
        assert set(check["rank_errors"]) == set(inputs)
        for name, error in check["rank_errors"].items():
            rank = INPUT_RANKS.get(name, 0)
            assert error is not None, (signature, name)
            assert f"`{name}` {RANK_RULES[rank]}" in error[0], (signature, name, error)


def test_token_and_text_paths_agree_on_empty_input(families, served):
    # Seq2seq: a source without tokens translates to nothing, as "" translates to "".
    seq2seq = served["empty_row"]["seq2seq"]
    assert seq2seq["text"][0] == ""
    assert seq2seq["token_ids"]["lengths"][0] == 0
    assert not any(seq2seq["token_ids"]["token_ids"][0])
    assert seq2seq["token_ids"]["lengths"][1] > 0
    # Causal LM: an empty prompt is continued from the same filler token on both paths.
    causal = served["empty_row"]["causal"]
    tok = families["causal"][0].tokenizers["text"]
    for ids, length, text in zip(
        causal["token_ids"]["token_ids"], causal["token_ids"]["lengths"], causal["text"]
    ):
        assert 0 < length <= CAUSAL_MAX_LENGTH
        detokenized = tok.detokenize(np.array(ids[:length]), skip_special_tokens=True)
        # As the served graph does: invalid UTF-8 (a byte-level piece) becomes U+FFFD.
        detokenized = tf.strings.unicode_transcode(
            detokenized, "UTF-8", "UTF-8", errors="replace", replace_control_characters=False
        )
        assert detokenized.numpy().decode() == text
    # Tagger: a row without tokens gets no label, as "" has no word.
    tagger = served["empty_row"]["tagger"]
    assert tagger["text"]["class_ids"][0] == [-1] * len(tagger["text"]["class_ids"][0])
    assert tagger["token_ids"]["class_ids"][0] == [-1, -1]
    assert tagger["token_ids"]["labels"][0] == ["", ""]
    assert min(tagger["token_ids"]["class_ids"][1]) >= 0


def test_exports_hold_only_core_tf_and_the_documented_tensorflow_text_ops(families, encoder_export):
    paths = {name: path for name, (_, path) in families.items()}
    paths["encoder"] = encoder_export[1]
    needed = set()
    for name, path in paths.items():
        ops = graph_ops(path)
        # The decoding loops' cache writes used to be XlaDynamicUpdateSlice.
        assert not [op for op in ops if op.startswith("Xla")], name
        extra = set(non_core_ops(path))
        assert extra <= set(TENSORFLOW_TEXT_OPS), (name, sorted(extra - set(TENSORFLOW_TEXT_OPS)))
        needed |= extra
    assert {"SentencepieceOp", "RegexSplitWithOffsets"} <= needed  # the check sees them
    docs = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    assert [op for op in TENSORFLOW_TEXT_OPS if f"`{op}`" not in docs] == []


@pytest.mark.parametrize("length", [1, 3])
def test_core_tf_cache_writes_equal_slice_update(length):
    cache = tf.random.stateless_normal([2, 2, 3, 6, 4], seed=[1, 2])  # (B, 2, kv, S, head_dim)
    update = tf.random.stateless_normal([2, 2, 3, length, 4], seed=[3, 4])

    @tf.function(autograph=False)
    def core(index):
        with core_tf_cache_writes():
            return write_cache(cache, update, index)

    for index in range(6 - length + 1):
        want = write_cache(cache, update, index)  # keras.ops.slice_update
        np.testing.assert_array_equal(core(tf.constant(index)).numpy(), want.numpy())
    ops = {op.type for op in core.get_concrete_function(tf.constant(0)).graph.get_operations()}
    assert "TensorStridedSliceUpdate" in ops and not any(op.startswith("Xla") for op in ops)


def test_tokenizers_travel_inside_saved_model_pb(families):
    # docs/serving.md: `assets/` holds no file; the SentencePiece model is a graph constant.
    for name, (_, path) in families.items():
        assets = path / "assets"
        assert not assets.exists() or list(assets.iterdir()) == [], name
    item, path = families["seq2seq"]
    model_proto = item.tokenizers["source"]._model_proto
    assert model_proto in (path / "saved_model.pb").read_bytes()
