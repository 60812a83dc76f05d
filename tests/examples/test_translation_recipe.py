"""The translation application's recipe (examples/translation/recipe.py): training, resuming,
run history, bundled weights, warm starts; and what its model card reports of them, read back
field by field (tests/examples/card_helpers.py), not matched as wording."""

import dataclasses
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from card_helpers import parse_card, sources_by_run

from kerasllm import zoo
from kerasllm.text_to_text import TextToText
from kerasllm.training import load_model_weights

REPORTS = {
    "test": {"verses": 3, "bleu": 1.5, "chrf": 2.25, "translate_seconds": 0.1,
             "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []},
    "validation, beam 2": {"verses": 2, "bleu": 0.0, "chrf": 12.0, "translate_seconds": 4.0,
                           "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []},
}  # fmt: skip


def card_of(bundle_dir, metadata: dict, command: str = "x") -> dict:
    """Writes the card of `metadata` with `REPORTS`, checks what every card must report, and
    returns it parsed."""
    from translation import write_model_card
    from translation.recipe import PER_RUN_FIELDS

    card = parse_card(write_model_card(bundle_dir, metadata, REPORTS, command).read_text())
    assert json.loads((bundle_dir / "eval.json").read_text()) == REPORTS
    assert [row.pop("split") for row in card["quality"]] == list(REPORTS)
    assert card["quality"] == [
        {k: r[k] for k in ("verses", "bleu", "chrf", "translate_seconds")} for r in REPORTS.values()
    ]
    runs = metadata.get("training_runs", [])
    assert [run["steps"] for run in card["runs"]][-len(runs) or len(card["runs"]) :] == [
        run["steps"] for run in runs
    ]
    for parsed, run in zip(card["runs"][len(card["runs"]) - len(runs) :], runs):
        assert parsed["seconds"] == run["seconds"]
        assert parsed["unrecorded"] == bool(run.get("unrecorded"))
        assert parsed["interrupted"] == bool(run.get("interrupted"))
        if not run.get("unrecorded"):
            assert parsed["command"] == (run.get("command") or command)
            assert parsed["hardware"] == run.get("hardware")
    shared = {k: v for k, v in metadata.get("recipe", {}).items() if k not in PER_RUN_FIELDS}
    assert card["recipe"] == json.loads(json.dumps(shared))
    assert card["steps"] == metadata["steps"]
    return card


def test_recipe_resumes_and_the_model_card_reports_every_run(tmp_path, monkeypatch):
    from translation import Recipe, evaluation, recipe

    from kerasllm.testing import interrupt_on_loop

    corpus = recipe.datasets.parallel_corpus
    few = lambda *a, **k: corpus(*a, **k)[:48]  # noqa: E731  a few verses per split keep this fast
    monkeypatch.setattr(recipe.datasets, "parallel_corpus", few)
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
    assert all("CPU cores" in run["hardware"] for run in runs)
    card = card_of(tmp_path / "bundle", resumed.metadata, "second")
    assert [run["command"] for run in card["runs"]] == ["first", "second"]
    assert card["recipe"]["vocabulary_size"] == 400 and "steps" not in card["recipe"]
    assert (card["run_count"], card["weights_steps"]) == (2, [3])
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
    card = card_of(tmp_path / "bundle", final.metadata)
    assert card["runs"][2]["interrupted"] and card["runs"][2]["command"] == "third"
    assert card["weights_steps"] == [13] and "last step" in card["training"]["Weights"]

    # The bundle may hold an earlier checkpoint (e.g. chosen by validation BLEU).
    earlier = recipe.train(Recipe(steps=13, **small), tmp_path, verbose=0, bundle_weights="3")
    assert earlier.metadata["weights_step"] == 3 and earlier.metadata["steps"] == 13
    reference = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None,
                        **Recipe(**small).model_overrides(400))  # fmt: skip
    load_model_weights(reference, tmp_path / "checkpoints" / "ckpt-3")
    for got, want in zip(earlier.model.weights, reference.weights):
        np.testing.assert_array_equal(got, want)
    card = card_of(tmp_path / "bundle", earlier.metadata)
    assert card["weights_steps"] == [3] and card["steps"] == 13
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
    card = card_of(tmp_path / "bundle", averaged.metadata)
    assert card["weights_steps"] == [3, 13] and "average:2" in card["training"]["Weights"]
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
    from translation import Recipe, recipe

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

    metadata = {"recipe": dataclasses.asdict(Recipe(extra_sources=("k", "3"))), "steps": 1}
    extra = card_of(tmp_path, metadata, "cmd")["data"]["Extra sources"]
    assert re.findall(r"\(`(\w+)`\)", extra) == ["k", "3"] and "King James" in extra
    plain = {"recipe": dataclasses.asdict(Recipe()), "steps": 1}
    assert not {"Extra sources", "Sources by training run"} & set(
        card_of(tmp_path, plain, "cmd")["data"]
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
    card = card_of(tmp_path, chain, "z")
    assert sources_by_run(card["data"]["Sources by training run"]) == {
        (1, 3): ["k", "3"],
        (4, 4): [],
    }
    assert [run["start"] for run in card["runs"]] == [None, None, "a", "b"]
    assert card["runs"][3] == {**card["runs"][3], "steps": [0, 1], "seconds": 1.0, "command": "z"}
    no_extra = {**chain, "initialized_from": {**middle, "recipe": plain["recipe"],
                                              "initialized_from": None}}  # fmt: skip
    card = card_of(tmp_path, no_extra, "z")
    assert not {"Extra sources", "Sources by training run"} & set(card["data"])


def test_recipe_attention_dropout_defaults_to_dropout():
    from translation import Recipe

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
    from translation import recipe

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
    card = card_of(tmp_path / "bundle", metadata)
    assert card["train_seconds_total"] == 380.0 and "partly estimated" in card["training"]["Steps"]
    assert card["runs"][1]["unrecorded"] and card["runs"][1]["command"] is None

    # Without a log of the missing steps, the time is unknown rather than made up.
    (tmp_path / "training_runs.json").unlink()
    for file in logs.iterdir():
        file.unlink()
    recipe._record_run(tmp_path, "late start", 400, 410, 5.0, {})
    runs = json.loads((tmp_path / "training_runs.json").read_text())
    assert runs[0] == {"command": None, "steps": [0, 400], "seconds": None, "unrecorded": True}


def test_padding_fraction_is_weighted_by_the_steps_of_the_runs_that_drew_batches(tmp_path):
    # A run that only bundles (no steps) draws no batches; its 0.0 must not become the model's.
    from translation import recipe

    recipe._record_run(tmp_path, "first", 0, 100, 10.0, {}, padding_fraction=0.2)
    recipe._record_run(tmp_path, "second", 100, 400, 30.0, {}, padding_fraction=0.1)
    runs = recipe._record_run(tmp_path, "bundle only", 400, 400, 1.0, {}, padding_fraction=0.0)
    assert [run["padding_fraction"] for run in runs] == [0.2, 0.1]
    assert recipe._trained_padding_fraction(runs) == 0.125  # (0.2 x 100 + 0.1 x 300) / 400
    assert recipe._trained_padding_fraction([{"steps": [0, 5], "seconds": 1.0}]) is None


@pytest.mark.slow  # minutes of CPU on 2 cores; keeps the default suite under ~20 min
def test_init_from_starts_a_new_run_from_a_bundle_or_grows_it_and_keeps_its_history(
    tmp_path, monkeypatch
):
    from translation import Recipe, recipe

    corpus = recipe.datasets.parallel_corpus
    monkeypatch.setattr(recipe.datasets, "parallel_corpus", lambda *a, **k: corpus(*a, **k)[:48])
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
    card = card_of(tmp_path / "b" / "bundle", second.metadata)
    assert (card["steps"], card["total_steps"], card["run_count"]) == (1, 3, 2)
    assert [(run["steps"], run["start"]) for run in card["runs"]] == [
        ([0, 2], None),
        ([0, 1], start),
    ]
    assert [run["command"] for run in card["runs"]] == ["first", "second"]

    # Deeper stacks grow the bundle: the new decoder layer starts as the identity.
    deeper = Recipe(steps=1, learning_rate=1e-12, init_from=start, **{**small, "decoder_layers": 2})
    grown = recipe.train(deeper, tmp_path / "g", verbose=0, command="grown")
    assert grown.metadata["initialized_from"]["grown"] == {"num_decoder_layers": [1, 2]}
    assert grown.metadata["model_overrides"]["num_decoder_layers"] == 2
    verses = ["In the beginning God created the heavens and the earth.", "Jesus wept."]
    assert TextToText(grown).generate(verses) == TextToText(first).generate(verses)
    card = card_of(tmp_path / "g" / "bundle", grown.metadata)
    assert card["runs"][-1]["grown"] == {"decoder": [1, 2]} and card["runs"][0]["grown"] == {}

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
