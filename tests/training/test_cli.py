"""`kerasllm pretrain` and `kerasllm finetune`: help, a tiny run on the user's own files, resume."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from kerasllm.cli import main
from kerasllm.testing import synthetic_reviews, synthetic_text_samples

TINY_MODEL = ["--set", "num_layers=1", "--set", "hidden_dim=16", "--set", "intermediate_dim=32"]
TINY_RUN = ["--batch-size", "4", "--sequence-length", "16", "--vocabulary-size", "400"]


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_help_explains_the_command(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--model",
        "--objective",
        "--data",
        "--model-dir",
        "--steps",
        "--batch-size",
        "--learning-rate",
        "--checkpoint-every",
        "--strategy",
        "--precision",
        "resumes",
        "examples:",
    ):
        assert option in text, option
    if command == "finetune":
        assert "--from-scratch" in text and "pretrained weights" in text


def _news_like_texts() -> list[str]:
    samples = synthetic_text_samples()
    return samples["news"] + samples["english"][:25]


def test_pretrain_on_own_text_then_rerun_resumes(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_news_like_texts()) + "\n")
    model_dir = tmp_path / "run"
    args = ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--data", str(corpus)]
    args += ["--model-dir", str(model_dir), "--checkpoint-every", "2", "--verbose", "2"]
    args += TINY_MODEL + TINY_RUN
    assert main([*args, "--steps", "2"]) == 0
    first = capsys.readouterr().out
    # The first line says where the weights start (gpt_tiny ships none).
    assert first.splitlines()[0] == (
        "Training gpt_tiny from scratch (the preset ships no pretrained weights) with a "
        "tokenizer learned on the training texts."
    )
    assert "steps 0 -> 2" in first and "Resumed" not in first
    assert (model_dir / "tokenizer" / "tokenizer.json").exists()
    assert main([*args, "--steps", "4"]) == 0
    second = capsys.readouterr().out
    assert "Resumed from" in second and "at step 2" in second and "steps 2 -> 4" in second
    results = json.loads((model_dir / "results.json").read_text())
    assert results["step"] == 4 and results["eval"]["perplexity"] > 1


def test_finetune_on_own_csv(tmp_path, capsys):
    texts, labels = synthetic_reviews()
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in zip(texts[:200], labels[:200]):
            writer.writerow([text, ["bad", "good"][label]])
    model_dir = tmp_path / "run"
    args = ["finetune", "--model", "bert_tiny", "--objective", "classification"]
    args += ["--data", str(path), "--model-dir", str(model_dir), "--steps", "3", "--verbose", "0"]
    args += ["--freeze-layers", "1", "--layerwise-lr-decay", "0.8", *TINY_MODEL, *TINY_RUN]
    assert main(args) == 0
    best = json.loads((model_dir / "best" / "best.json").read_text())
    assert best["metric"] == "accuracy" and best["step"] == 3
    assert set(json.loads((model_dir / "results.json").read_text())["eval"]) == {
        "loss",
        "accuracy",
        "f1",
    }
    # The run leaves a bundle that `kerasllm export` turns into a served classifier.
    bundle_dir, served = model_dir / "bundle", tmp_path / "rt"
    assert main(["export", "--model", str(bundle_dir), "--out", str(served)]) == 0
    serve = tf.saved_model.load(str(served / "1")).signatures["serving_default"]
    labels = serve(text=tf.constant(["a fine film", ""]))["label"].numpy().tolist()
    assert len(labels) == 2 and set(labels) <= {b"bad", b"good"}


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    common = ["--model-dir", str(tmp_path), "--steps", "1"]
    assert (
        main(
            ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm"]
            + ["--data", "no_such_corpus", *common]
        )
        == 2
    )
    assert "neither a built-in corpus" in capsys.readouterr().err
    assert (
        main(
            ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm"]
            + ["--data", "rotten_tomatoes", *common]
        )
        == 2
    )
    assert "serves ['classification']" in capsys.readouterr().err


def test_kill_saves_a_checkpoint_and_ends_the_process_promptly(tmp_path):
    """`kill` during training: a checkpoint, status 130, and no wait on tf.data's threads."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_news_like_texts()) + "\n")
    model_dir = tmp_path / "run"
    args = ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--data", str(corpus)]
    args += ["--model-dir", str(model_dir), "--steps", "1000000", "--verbose", "2"]
    args += ["--log-every", "10", *TINY_MODEL, *TINY_RUN]
    process = subprocess.Popen(
        [sys.executable, "-m", "kerasllm.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in process.stdout:  # wait until training is under way
        output.append(line)
        if line.startswith("step ") and "loss" in line:
            break
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        rest, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("The process did not end within 60 s of SIGTERM:\n" + "".join(output))
    waited = time.monotonic() - signalled
    text = "".join(output) + rest
    assert process.returncode == 130, text
    # The training loop returns to Python about every `seconds_per_loop` (2 s), where the
    # interrupt takes effect; before, it waited for the whole `steps_per_loop` (31 s seen).
    # Generous for a loaded machine: the checkpoint save is part of it.
    assert waited < 20, (waited, text)
    # No TensorFlow C++ log lines (e.g. "failed call to cuInit") in a command's output.
    assert "cuInit" not in text and "cudart" not in text, text
    assert "Interrupted: saved a checkpoint at step" in text and "Traceback" not in text
    assert tf.train.latest_checkpoint(str(model_dir)) is not None


def test_the_model_dir_defaults_to_a_folder_named_after_the_command_model_and_data():
    from kerasllm.cli import build_parser
    from kerasllm.cli.pretrain import default_model_dir

    args = build_parser().parse_args(
        ["finetune", "--model", "minilm_l6", "--data", "rotten_tomatoes"]
    )
    assert args.model_dir is None
    assert default_model_dir(args) == "runs/finetune_minilm_l6_rotten_tomatoes"
    args = build_parser().parse_args(
        ["pretrain", "--model", "presets/my bert.json", "--data", "/data/reviews.csv"]
    )
    assert default_model_dir(args) == "runs/pretrain_my_bert_reviews"


def test_early_stopping_flags_reach_the_trainer_config(tmp_path, capsys):
    from kerasllm.cli import build_parser
    from kerasllm.cli.pretrain import config_from_args

    common = ["finetune", "--model", "bert_tiny", "--data", "rotten_tomatoes"]
    common += ["--model-dir", str(tmp_path), "--steps", "4"]
    args = build_parser().parse_args(
        [*common, "--eval-every", "2", "--early-stopping-patience", "3"]
        + ["--early-stopping-metric", "val_accuracy"]
    )
    config = config_from_args(args)
    assert (config.early_stopping_patience, config.early_stopping_metric) == (3, "val_accuracy")
    assert config.resolved_early_stopping_mode == "max"
    # The error names the flags the user typed, before anything is loaded.
    assert main([*common, "--early-stopping-patience", "3"]) == 2
    assert "--early-stopping-patience needs --eval-every" in capsys.readouterr().err


def test_invalid_values_are_reported_with_the_flag_the_user_typed(tmp_path, capsys):
    common = ["pretrain", "--model", "gpt_tiny", "--objective", "causal_lm", "--data", "news"]
    common += ["--model-dir", str(tmp_path)]
    assert main([*common, "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size must be a positive integer; got 0" in err and "global_batch" not in err
    assert main([*common, "--log-every", "-1", "--xla"]) == 2
    assert "--log-every must be a positive integer; got -1" in capsys.readouterr().err
