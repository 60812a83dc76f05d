"""The translation front end: text handling, scoring, and the Translator's guarantees."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasllm import bundle, tokenizers, zoo
from kerasllm.training import load_model_weights
from kerasllm.translation import Translator, clean, score, split_to_fit

REPO = Path(__file__).resolve().parents[2]


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


def test_score_matches_sacrebleu_on_identity_and_rejects_misaligned():
    refs = ["Le chat est sur le tapis.", "Il pleut."]
    perfect = score(refs, refs)
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0
    assert "13a" in perfect["bleu_signature"] and "case:mixed" in perfect["bleu_signature"]
    assert score(["Il neige.", "Bonjour."], refs)["bleu"] < 20
    with pytest.raises(ValueError, match="must match"):
        score(["a"], refs)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    texts = ["the king said to the people", "le roi dit au peuple"] * 30
    tok = tokenizers.train_sentencepiece(texts, vocabulary_size=300)
    model = zoo.get(
        "transformer_tiny", task="seq2seq_lm", vocabulary_size=tok.vocabulary_size, weights=None
    )
    path = tmp_path_factory.mktemp("bundle") / "b"
    bundle.Bundle(
        model, {"source": tok, "target": tok}, {"source_length": 12, "target_length": 6}
    ).save(path)
    return path


def test_translator_returns_one_bounded_output_per_input(tiny_bundle):
    translator = Translator(tiny_bundle)
    calls = []
    generate = translator.model.generate

    def recording_generate(rows, **kwargs):
        calls.append((rows, kwargs["max_new_tokens"]))
        return generate(rows, **kwargs)

    translator.model.generate = recording_generate
    long_text = "the king said. " * 30  # far over the 12-token source length
    inputs = ["", "   ", "the king", long_text, "مرحبا 😀 \x07", "le roi"]
    outputs = translator.translate(inputs, max_length=4)
    assert len(outputs) == len(inputs)
    assert all(isinstance(text, str) for text in outputs)
    assert outputs[0] == "" and outputs[1] == ""
    rows = [row for batch, _ in calls for row in batch]
    # Empty inputs never reach the model; the long one arrives as pieces that fit the encoder.
    assert len(rows) > 4 + 1 and all(len(row) <= 12 for row in rows)
    assert all(max_new <= 4 for _, max_new in calls)
    tok = translator.target_tokenizer
    assert all(len(tok.tokenize(text).numpy()) <= 4 for text in outputs[2:3] + outputs[4:])
    translator.model.generate = generate
    assert translator.translate("the king", max_length=4) == outputs[2]
    assert translator.translate(["the king"], beams=2, max_length=4)[0] == translator.translate(
        "the king", beams=2, max_length=4
    )
    with pytest.raises(ValueError, match="beams"):
        translator.translate("x", beams=0)


def test_translator_rejects_non_seq2seq_bundle(tmp_path):
    tok = tokenizers.train_sentencepiece(["a b c"] * 20, vocabulary_size=270)
    model = zoo.get("gpt_tiny", task="causal_lm", vocabulary_size=tok.vocabulary_size, weights=None)
    bundle.Bundle(model, {"text": tok}).save(tmp_path / "lm")
    with pytest.raises(ValueError, match="needs a Seq2SeqLM bundle"):
        Translator(tmp_path / "lm")


def test_example_pipes_one_line_per_input_line(tiny_bundle):
    """stdin mode: exactly one output line per input line, nothing else on stdout."""
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tiny_bundle),
         "--max_length", "4"],
        input="the king\n\nle roi dit\n",
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 4  # three lines, each newline-terminated
    assert lines[1] == ""


def test_example_pipes_any_bytes_one_line_each_as_utf8_in_any_locale():
    """Undecodable bytes, blank lines, Windows line ends and a last line without a newline:
    one UTF-8 line out per line in, one warning, under an ASCII locale (which once raised
    UnicodeDecodeError on the first byte, or UnicodeEncodeError on the first accent)."""
    source = b"\xff\xfe bad\n\nWhere is the house?\r\n  \nLove your neighbor as yourself."
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py")],
        input=source,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"},
        timeout=300,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr[-2000:]
    lines = result.stdout.decode("utf-8").split("\n")  # strict: the output is UTF-8
    assert len(lines) == 6 and lines[-1] == ""  # five lines, each newline-terminated
    assert lines[1] == "" and lines[3] == ""  # blank (or blank-looking) lines stay blank
    assert lines[0] and "maison" in lines[2] and lines[4]
    assert any(ord(c) > 127 for c in result.stdout.decode("utf-8"))  # French, not escaped
    assert stderr.count("standard input is not valid UTF-8") == 1


def test_example_translates_an_empty_pipe_to_nothing(tiny_bundle):
    # 0 lines in, 0 lines out: a pipeline once got the built-in sentences (15 lines).
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tiny_bundle)],
        input=b"",
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == b""


def test_example_eval_scores_greedy_and_beam_search(tiny_bundle, tmp_path):
    out = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--eval", "--model",
         str(tiny_bundle), "--eval_limit", "3", "--eval_beams", "2", "--max_length", "4",
         "--length_penalty", "0.6", "--eval_output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(out.read_text())
    beam = ", beam 2, length penalty 0.6"
    assert list(reports) == ["test", "validation", "test" + beam, "validation" + beam]
    assert reports["test"]["settings"]["beams"] == 1
    assert "length_penalty" not in reports["test"]["settings"]  # greedy: no length penalty
    assert reports["test" + beam]["settings"]["beams"] == 2
    assert reports["test" + beam]["settings"]["length_penalty"] == 0.6
    assert all(r["verses"] == 3 for r in reports.values())


def test_example_eval_update_card_rewrites_the_bundles_card(tiny_bundle, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_bundle, model)
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--eval", "--update_card",
         "--model", str(model), "--eval_limit", "2", "--eval_beams", "1", "--max_length", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout)
    assert json.loads((model / "eval.json").read_text()) == reports
    card = (model / "MODEL_CARD.md").read_text()
    for split in ("test", "validation"):
        row = f"| {split} | 2 | {reports[split]['bleu']} | {reports[split]['chrf']} |"
        assert row in card


def test_example_reports_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "translate.py"), "--model", str(tmp_path)],
        input="",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "No translation model" in result.stderr


def test_recipe_resumes_and_the_model_card_reports_every_run(tmp_path, monkeypatch):
    from kerasllm.testing import interrupt_on_loop
    from kerasllm.translation import Recipe, evaluation, recipe, write_model_card

    corpus = recipe.data.parallel_corpus
    few = lambda *a, **k: corpus(*a, **k)[:48]  # noqa: E731  a few verses per split keep this fast
    monkeypatch.setattr(recipe.data, "parallel_corpus", few)
    monkeypatch.setattr(evaluation, "parallel_corpus", lambda *a, **k: corpus(*a, **k)[:8])
    small = dict(
        preset="transformer_tiny",
        encoder_layers=1,
        decoder_layers=1,
        vocabulary_size=400,
        source_length=24,
        target_length=24,
        batch_size=8,
        bucket_boundaries=(16,),
        eval_every=100,
        jit_compile=False,
    )
    recipe.train(Recipe(steps=2, **small), tmp_path, verbose=0, command="first")
    # XLA is a per-run setting: a resumed run may switch it.
    resumed = recipe.train(
        Recipe(steps=3, **{**small, "jit_compile": True}), tmp_path, verbose=0, command="second"
    )

    runs = resumed.metadata["training_runs"]
    assert [run["steps"] for run in runs] == [[0, 2], [2, 3]]
    # Each evaluation scores greedy translations of the validation verses; the best BLEU's
    # checkpoint is kept.
    assert {"loss", "bleu", "chrf"} <= set(resumed.metadata["validation"])
    best = json.loads((tmp_path / "checkpoints" / "best" / "best.json").read_text())
    assert best["metric"] == "bleu" and best["value"] == resumed.metadata["validation"]["bleu"]
    assert [run["command"] for run in runs] == ["first", "second"]
    assert resumed.metadata["steps"] == 3
    assert resumed.metadata["train_seconds_total"] == pytest.approx(
        sum(run["seconds"] for run in runs), abs=0.11
    )
    report = {"verses": 1, "bleu": 1.0, "chrf": 2.0, "translate_seconds": 0.1,
              "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []}  # fmt: skip
    card = write_model_card(tmp_path / "bundle", resumed.metadata, {"test": report}, "second")
    text = card.read_text()
    assert "steps 0 -> 2" in text and "steps 2 -> 3" in text and "`first`" in text
    assert all("CPU cores" in run["hardware"] for run in runs)
    assert f"on {runs[0]['hardware']}: `first`" in text
    recipe_line = next(line for line in text.splitlines() if line.startswith("- Recipe:"))
    assert '"vocabulary_size": 400' in recipe_line and '"steps"' not in recipe_line
    with pytest.raises(ValueError, match="different recipe"):
        recipe.train(Recipe(steps=4, **{**small, "decoder_layers": 2}), tmp_path, verbose=0)

    # Ctrl-C (or SIGTERM) during the second training loop: the run is still recorded.
    class InterruptedTrainer(recipe.Trainer):
        def _make_train_loop(self):
            return interrupt_on_loop(super()._make_train_loop)()

    monkeypatch.setattr(recipe, "Trainer", InterruptedTrainer)
    with pytest.raises(KeyboardInterrupt):
        recipe.train(Recipe(steps=30, **small), tmp_path, verbose=0, command="third")
    monkeypatch.setattr(recipe, "Trainer", InterruptedTrainer.__base__)
    final = recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0, command="fourth")
    runs = final.metadata["training_runs"]
    assert [run["steps"] for run in runs] == [[0, 2], [2, 3], [3, 13]]  # steps_per_loop=10
    assert runs[2]["interrupted"] and runs[2]["last_tokens_per_second"] is None
    text = write_model_card(tmp_path / "bundle", final.metadata, {"test": report}, "x").read_text()
    assert "steps 3 -> 13 in" in text and "(interrupted): `third`" in text
    assert "- Weights: the model at the last step (13)." in text

    # The bundle may hold an earlier checkpoint (e.g. chosen by validation BLEU).
    earlier = recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0, bundle_weights="3")
    assert earlier.metadata["weights_step"] == 3 and earlier.metadata["steps"] == 13
    reference = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None,
                        **Recipe(**small).model_overrides(400))  # fmt: skip
    load_model_weights(reference, tmp_path / "checkpoints" / "ckpt-3")
    for got, want in zip(earlier.model.weights, reference.weights):
        np.testing.assert_array_equal(got, want)
    text = write_model_card(tmp_path / "bundle", earlier.metadata, {"test": report}, "x")
    assert "checkpoint at step 3 (`--bundle_weights`; training went on to step 13)" in (
        text.read_text()
    )
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0, bundle_weights="7")

    # Or the mean weights of the newest checkpoints (13 and 3).
    averaged = recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0,
                            bundle_weights="average:2")  # fmt: skip
    assert averaged.metadata["averaged_steps"] == [3, 13]
    last = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None,
                   **Recipe(**small).model_overrides(400))  # fmt: skip
    load_model_weights(last, tmp_path / "checkpoints" / "ckpt-13")
    for got, at_3, at_13 in zip(averaged.model.weights, reference.weights, last.weights):
        np.testing.assert_allclose(got, (at_3.numpy() + at_13.numpy()) / 2, rtol=1e-6)
    text = write_model_card(tmp_path / "bundle", averaged.metadata, {"test": report}, "x")
    assert "mean weights of the checkpoints at steps 3, 13 (`--bundle_weights average:2`" in (
        text.read_text()
    )
    for bad in ("average:1", "average:x", "average:\u00b2", "avg:3", "Average:3", "bset",
                str(tmp_path / "checkpoints" / "ckpt-99")):  # fmt: skip
        with pytest.raises(ValueError, match="bundle_weights must be"):  # before training
            recipe.train(Recipe(steps=99, **small), tmp_path, verbose=0, bundle_weights=bad)
    with pytest.raises(ValueError, match="holds only 3 checkpoint"):
        recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0, bundle_weights="average:4")
    assert (
        json.loads((tmp_path / "checkpoints" / "config.json").read_text())["keep_checkpoints"] == 4
    )  # a run asked to average 4 keeps 4


def test_extra_sources_add_source_paraphrases_of_the_same_target_verses(tmp_path):
    from kerasllm.translation import Recipe, recipe, write_model_card

    primary = recipe.training_pairs(Recipe())
    pairs = recipe.training_pairs(Recipe(extra_sources=("k",)))
    kjv = pairs[len(primary) :]
    assert pairs[: len(primary)] == primary and len(kjv) == len(primary) == 29_793
    assert [t for _, t in kjv] == [t for _, t in primary]  # the same French verses, in order
    assert sum(s == p for (s, _), (p, _) in zip(kjv, primary)) < 0.05 * len(kjv)
    assert " hath " in " ".join(s for s, _ in kjv[:2000])  # KJV English, not WEB
    assert " hath " not in " ".join(s for s, _ in primary[:2000])
    for bad in (("4",), ("l",), ("k", "k")):
        with pytest.raises(ValueError, match="extra_sources"):
            recipe.training_pairs(Recipe(extra_sources=bad))

    # A run recorded before `extra_sources` existed trained without them: adding some is a
    # different recipe, caught before any work.
    old = {k: v for k, v in dataclasses.asdict(Recipe()).items() if k != "extra_sources"}
    (tmp_path / "recipe.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"different recipe \(\['extra_sources'\]"):
        recipe.train(Recipe(extra_sources=("k", "3")), tmp_path, verbose=0)

    report = {"verses": 1, "bleu": 1.0, "chrf": 2.0, "translate_seconds": 0.1,
              "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []}  # fmt: skip
    metadata = {"recipe": dataclasses.asdict(Recipe(extra_sources=("k", "3"))), "steps": 1}
    text = write_model_card(tmp_path, metadata, {"test": report}, "cmd").read_text()
    assert "King James Version 1611 (`k`), Bible in Basic English 1949 (`3`)" in text
    plain = {"recipe": dataclasses.asdict(Recipe()), "steps": 1}
    assert (
        "Extra sources"
        not in write_model_card(tmp_path, plain, {"test": report}, "cmd").read_text()
    )

    # A model continued with --init_from names the sources of each run; a start recorded
    # without its recipe gets them from its runs' commands (one directory, one recipe).
    def one_run(command):
        return [{"command": command, "steps": [0, 1], "seconds": 1.0}]

    killed = {"command": None, "steps": [0, 1], "seconds": None, "unrecorded": True}
    oldest = {"path": "a", "steps": 2, "training_runs": [killed, *one_run("x --extra_sources k,3")]}
    middle = {"path": "b", "steps": 1, "training_runs": one_run("y"), "initialized_from": oldest,
              "recipe": dataclasses.asdict(Recipe(extra_sources=("k", "3")))}  # fmt: skip
    chain = {**plain, "training_runs": one_run("z"), "initialized_from": middle}
    text = " ".join(write_model_card(tmp_path, chain, {"test": report}, "z").read_text().split())
    assert (
        "- Sources by training run: runs 1-3: the same verses also in King James Version 1611 "
        "(`k`), Bible in Basic English 1949 (`3`), each paired with the same French verses; "
        "run 4: the World English Bible alone (validation and test" in text
    )
    assert "4. steps 0 -> 1 in 1.0 s: `z`" in text
    no_extra = {**chain, "initialized_from": {**middle, "recipe": plain["recipe"],
                                              "initialized_from": None}}  # fmt: skip
    text = write_model_card(tmp_path, no_extra, {"test": report}, "z").read_text()
    assert "Sources by" not in text and "Extra sources" not in text


def test_recipe_attention_dropout_defaults_to_dropout():
    from kerasllm.translation import Recipe

    def rates(recipe):
        model = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None,
                        **recipe.model_overrides(400))  # fmt: skip
        blocks = [*model.backbone.encoder_blocks, *model.backbone.decoder_blocks]
        return {(block.dropout, block.attention_dropout) for block in blocks}

    assert rates(Recipe(dropout=0.1)) == {(0.1, 0.1)}
    assert rates(Recipe(dropout=0.1, attention_dropout=0.0)) == {(0.1, 0.0)}


def test_a_run_killed_before_recording_itself_is_filled_in_from_its_log(tmp_path):
    # A SIGKILLed run records nothing in training_runs.json; the next run resumes from its last
    # checkpoint. The gap gets an entry timed from that run's TensorBoard log (2 s per step).
    from kerasllm.translation import recipe, write_model_card

    logs = tmp_path / "checkpoints" / "train"
    logs.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(logs / "events.out.tfevents.1.host.1.0.v2")) as writer:
        for step in (100, 150, 200, 250):
            value = tf.compat.v1.Summary.Value(tag="loss", simple_value=1.0)
            summary = tf.compat.v1.Summary(value=[value])
            event = tf.compat.v1.Event(wall_time=1000.0 + 2 * step, step=step, summary=summary)
            writer.write(event.SerializeToString())
    recipe._record_run(tmp_path, "first", 0, 90, 50.0, {})
    runs = recipe._record_run(tmp_path, "third", 240, 300, 30.0, {})
    assert [run["steps"] for run in runs] == [[0, 90], [90, 240], [240, 300]]
    assert runs[1]["unrecorded"] and runs[1]["seconds"] == 300.0  # 150 steps x 2 s
    assert json.loads((tmp_path / "training_runs.json").read_text()) == runs
    assert recipe._record_run(tmp_path, "no steps", 300, 300, 1.0, {}) == runs

    metadata = {"steps": 300, "training_runs": runs, "train_seconds_total": 380.0}
    (tmp_path / "bundle").mkdir()
    report = {"verses": 1, "bleu": 1.0, "chrf": 2.0, "translate_seconds": 0.1,
              "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []}  # fmt: skip
    text = write_model_card(tmp_path / "bundle", metadata, {"test": report}, "x").read_text()
    assert "training time 380.0 s (6.3 min, partly estimated)" in text
    assert "2. steps 90 -> 240 in about 300.0 s (a run killed before it could record" in text

    # Without a log of the missing steps, the time is unknown rather than made up.
    (tmp_path / "training_runs.json").unlink()
    for file in logs.iterdir():
        file.unlink()
    recipe._record_run(tmp_path, "late start", 400, 410, 5.0, {})
    runs = json.loads((tmp_path / "training_runs.json").read_text())
    assert runs[0] == {"command": None, "steps": [0, 400], "seconds": None, "unrecorded": True}


def test_padding_fraction_is_weighted_by_the_steps_of_the_runs_that_drew_batches(tmp_path):
    # A run that only bundles (no steps) draws no batches; its 0.0 must not become the model's.
    from kerasllm.translation import recipe

    recipe._record_run(tmp_path, "first", 0, 100, 10.0, {}, padding_fraction=0.2)
    recipe._record_run(tmp_path, "second", 100, 400, 30.0, {}, padding_fraction=0.1)
    runs = recipe._record_run(tmp_path, "bundle only", 400, 400, 1.0, {}, padding_fraction=0.0)
    assert [run["padding_fraction"] for run in runs] == [0.2, 0.1]
    assert recipe._trained_padding_fraction(runs) == 0.125  # (0.2 x 100 + 0.1 x 300) / 400
    assert recipe._trained_padding_fraction([{"steps": [0, 5], "seconds": 1.0}]) is None


def test_init_from_starts_a_new_run_from_a_bundle_or_grows_it_and_keeps_its_history(
    tmp_path, monkeypatch
):
    from kerasllm.translation import Recipe, Translator, recipe, write_model_card

    corpus = recipe.data.parallel_corpus
    monkeypatch.setattr(recipe.data, "parallel_corpus", lambda *a, **k: corpus(*a, **k)[:48])
    small = dict(preset="transformer_tiny", encoder_layers=1, decoder_layers=1,
                 vocabulary_size=400, source_length=24, target_length=24, batch_size=8,
                 bucket_boundaries=(16,), eval_every=100, jit_compile=False)  # fmt: skip
    first = recipe.train(Recipe(steps=2, **small), tmp_path / "a", verbose=0, command="first")
    start = str(tmp_path / "a" / "bundle")

    # A learning rate of ~0: the new run's weights are the bundle's, not a random start.
    warm = Recipe(steps=1, learning_rate=1e-12, init_from=start, **small)
    second = recipe.train(warm, tmp_path / "b", verbose=0, command="second")
    for got, want in zip(second.model.weights, first.model.weights):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert (
        second.tokenizers["source"].get_vocabulary() == first.tokenizers["source"].get_vocabulary()
    )
    assert (tmp_path / "b" / "tokenizer" / "tokenizer.json").exists()  # a resume keeps its ids

    started = second.metadata["initialized_from"]
    assert started["path"] == start and started["steps"] == 2 and started["weights_step"] == 2
    # The data its runs trained on (as read back from JSON: tuples become lists).
    assert started["recipe"] == json.loads(json.dumps(first.metadata["recipe"]))
    assert started["training_runs"] == first.metadata["training_runs"]
    assert second.metadata["train_seconds_total"] == pytest.approx(
        first.metadata["train_seconds_total"] + second.metadata["train_seconds_this_run"],
        abs=0.11,
    )
    report = {"verses": 1, "bleu": 1.0, "chrf": 2.0, "translate_seconds": 0.1,
              "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []}  # fmt: skip
    text = write_model_card(tmp_path / "b" / "bundle", second.metadata, {"test": report}, "x")
    text = text.read_text()
    assert "- Steps: 1 after initialization, 3 in all;" in text and "in\n  2 run(s)" in text
    assert text.index("1. steps 0 -> 2 in") < text.index(f"then from the weights of `{start}`")
    assert text.index(f"`{start}` (step 2)") < text.index("2. steps 0 -> 1 in")

    # Deeper stacks grow the bundle: the new decoder layer starts as the identity.
    deeper = Recipe(steps=1, learning_rate=1e-12, init_from=start, **{**small, "decoder_layers": 2})
    grown = recipe.train(deeper, tmp_path / "g", verbose=0, command="grown")
    assert grown.metadata["initialized_from"]["grown"] == {"num_decoder_layers": [1, 2]}
    assert grown.metadata["model_overrides"]["num_decoder_layers"] == 2
    verses = ["In the beginning God created the heavens and the earth.", "Jesus wept."]
    assert Translator(grown).translate(verses) == Translator(first).translate(verses)
    text = write_model_card(tmp_path / "g" / "bundle", grown.metadata, {"test": report}, "x")
    assert "schedule, grown from 1 to 2 decoder layers (the new" in text.read_text()

    # Otherwise the bundle must be a translation bundle of the same architecture; checked before
    # any work.
    with pytest.raises(ValueError, match=r"another architecture.*dropout 0.0 there, 0.2 here"):
        recipe.train(Recipe(**{**small, "dropout": 0.2}, init_from=start), tmp_path / "c")
    post_norm = {**small, "encoder_layers": 2, "norm_first": False}
    with pytest.raises(ValueError, match=r"norm_first True there, False here, num_layers 1 there"):
        recipe.train(Recipe(**post_norm, init_from=start), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="not a kerasllm model bundle"):
        recipe.train(Recipe(init_from=str(tmp_path / "a"), **small), tmp_path / "c")
    assert not (tmp_path / "c" / "recipe.json").exists()


def test_translator_refuses_bad_arguments_with_errors_naming_them(tiny_bundle):
    translator = Translator(tiny_bundle)
    calls = []
    generate = translator.model.generate
    translator.model.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    for texts, message in [
        (None, "`texts` must be a str .* got NoneType"),
        (5, "`texts` must be a str .* got int"),
        ({"a": 1}, "`texts` must be a str .* got dict"),
        ([None], r"`texts\[0\]` must be a str .* got NoneType None"),
        (["ok", 5], r"`texts\[1\]` must be a str .* got int 5"),
    ]:
        with pytest.raises(TypeError, match=message):
            translator.translate(texts)
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
            translator.translate(["the king"], **kwargs)
    assert calls == []  # every check comes before any decoding
    assert translator.translate([]) == [] and translator.translate(()) == []
    assert calls == []
    # UTF-8 bytes are text (as in the served signatures); undecodable bytes do not raise.
    assert translator.translate(b"the king", max_length=4) == translator.translate(
        "the king", max_length=4
    )
    assert len(translator.translate([b"\xff\xfe the king", "le roi"], max_length=4)) == 2
    assert translator.translate(np.array(["the king"]), max_length=4) == translator.translate(
        ["the king"], max_length=4
    )


def test_translator_maps_typographic_punctuation_like_its_exported_graph(tiny_bundle):
    translator = Translator(tiny_bundle)
    typographic = "the king\u2019s \u201cpeople\u201d\u00a0\u2014 said\u2026"
    plain = 'the king\'s "people" -- said...'
    source = translator.source_tokenizer
    assert source.unify_typography is True  # newly trained tokenizers unify by default
    assert source.tokenize(typographic).numpy().tolist() == source.tokenize(plain).numpy().tolist()
    assert translator.translate([typographic], max_length=4) == translator.translate(
        [plain], max_length=4
    )
    source.unify_typography = False  # a tokenizer.json written before the option existed
    assert source.tokenize(typographic).numpy().tolist() != source.tokenize(plain).numpy().tolist()
    source.unify_typography = True


def test_the_shipped_tokenizer_unifies_typography_and_the_corpus_has_none():
    shipped = tokenizers.load(REPO / "saved_models/translate_en_fr/tokenizers/source")
    assert shipped.unify_typography is True
    verse = "I\u2019m the Lord\u2019s \u201cservant\u201d\u00a0\u2014 amen\u2026"
    ascii_verse = "I'm the Lord's \"servant\" -- amen..."
    assert (
        shipped.tokenize(verse).numpy().tolist() == shipped.tokenize(ascii_verse).numpy().tolist()
    )
    # Turning the option on changed nothing the model was trained or evaluated on: the
    # mapping is the identity on every verse, source and target, of the split sampled here.
    from kerasllm.data import parallel_corpus
    from kerasllm.tokenizers.typography import unify_typography

    texts = [text for pair in parallel_corpus(split="test") for text in pair]
    assert [t.decode() for t in unify_typography(texts).numpy()] == texts


def test_split_to_fit_ends_sentences_after_closing_quotes():
    def short(text):
        return len(text) <= 20

    for quoted in ('"Go now."', "\u201cGo now.\u201d", "'Go now.'", "(Go now.)"):
        text = f"He said, {quoted} Then he left."
        assert split_to_fit(text, short) == [f"He said, {quoted}", "Then he left."]
