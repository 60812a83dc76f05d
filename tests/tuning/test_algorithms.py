"""Hyperband and Bayesian optimization, the HParams data TensorBoard reads, and `kerasllm tune`."""

import glob
import json
import os

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2
from tuning_helpers import tiny_search

from kerasllm import zoo
from kerasllm.cli import main as cli_main
from kerasllm.tuning import BEST_PRESET, SearchSpace, run_search

SPACE = SearchSpace(num_layers=[1], num_heads=[2], hidden_dim=[16, 32], learning_rate=[1e-3, 3e-3])


def hparams_plugin_data(directory):
    """The HParams plugin payloads of the event files directly in `directory`."""
    payloads = []
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData()
                    data.ParseFromString(value.metadata.plugin_data.content)
                    payloads.append(data)
    return payloads


def test_hyperband_promotes_trials_from_their_parent_checkpoint(tmp_path):
    search_dir = str(tmp_path / "hyperband")
    result = tiny_search(
        search_dir, SPACE, algorithm="hyperband", max_trials=3, hyperband_factor=3, steps=2
    )
    completed = [t for t in result["trials"] if t["status"] == "COMPLETED"]
    assert len(completed) >= 3
    promoted = [t for t in completed if t["values"].get("tuner/trial_id")]
    assert promoted, "Hyperband with max_epochs=3, factor=3 promotes at least one trial"
    for trial in promoted:
        trial_dir = os.path.join(search_dir, f"trial_{trial['trial_id']}")
        parent = os.path.join(search_dir, f"trial_{trial['values']['tuner/trial_id']}")
        with open(os.path.join(trial_dir, "config.json")) as f:
            config = json.load(f)
        # It started from its parent's weights and trained only the epochs it adds.
        assert config["init_checkpoint"] == parent
        epochs = trial["values"]["tuner/epochs"] - trial["values"]["tuner/initial_epoch"]
        assert config["steps"] == epochs * 2
    assert os.path.exists(os.path.join(search_dir, BEST_PRESET))


def test_bayesian_search_and_hparams_dashboard_data(tmp_path):
    search_dir = str(tmp_path / "bayesian")
    result = tiny_search(search_dir, SPACE, algorithm="bayesian", max_trials=3, steps=2)
    completed = [t for t in result["trials"] if t["status"] == "COMPLETED"]
    assert len(completed) == 3

    # The experiment (search space and metrics) is written once in the search directory ...
    experiments = [
        d.experiment for d in hparams_plugin_data(search_dir) if d.HasField("experiment")
    ]
    assert len(experiments) == 1
    domains = {h.name: [v.number_value for v in h.domain_discrete.values]
               for h in experiments[0].hparam_infos}  # fmt: skip
    assert domains["hidden_dim"] == [16.0, 32.0]
    assert "val_accuracy" in {m.display_name for m in experiments[0].metric_infos}
    # ... and each trial's values in its own run folder, next to its eval/ scalars.
    for trial in completed:
        trial_dir = os.path.join(search_dir, f"trial_{trial['trial_id']}")
        starts = [d.session_start_info for d in hparams_plugin_data(trial_dir)
                  if d.HasField("session_start_info")]  # fmt: skip
        assert len(starts) == 1
        logged = {k: v.number_value for k, v in starts[0].hparams.items()}
        assert logged["hidden_dim"] == trial["values"]["hidden_dim"]
        assert logged["learning_rate"] == pytest.approx(trial["values"]["learning_rate"])
        assert os.listdir(os.path.join(trial_dir, "eval"))


def test_cli_tune_then_retrain_best(tmp_path, capsys):
    search_dir = str(tmp_path / "cli")
    space = json.dumps({"num_layers": [1], "num_heads": [2], "hidden_dim": [16, 32]})
    code = cli_main([
        "tune", "--model", "bert_tiny", "--objective", "classification",
        "--data", "rotten_tomatoes", "--search-dir", search_dir, "--space", space,
        "--metric", "accuracy", "--max-trials", "2", "--steps", "2", "--batch-size", "16",
        "--sequence-length", "32", "--vocabulary-size", "600", "--max-train-examples", "400",
        "--max-eval-examples", "64", "--retrain-best", "3",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("best ") for line in printed)
    history = json.loads(printed[-1])
    assert history["step"] == 3 and "accuracy" in history["eval"]
    # The retrained model's checkpoint loads into the best preset through the zoo.
    model = zoo.get(
        os.path.join(search_dir, BEST_PRESET), task="classifier", num_classes=2,
        weights=os.path.join(search_dir, "best"),
    )  # fmt: skip
    assert model.backbone.num_layers == 1


def test_translation_search_on_validation_bleu(tmp_path):
    space = SearchSpace(num_layers=[1], num_heads=[2], hidden_dim=[16], learning_rate=[3e-3])
    result = run_search(
        "transformer_tiny", "seq2seq", "bible", str(tmp_path / "bleu"), space,
        metric="bleu", max_trials=1, steps=2, batch_size=8, sequence_length=16,
        vocabulary_size=500, max_train_examples=200, max_eval_examples=8,
    )  # fmt: skip
    (trial,) = result["trials"]
    assert trial["status"] == "COMPLETED"
    assert 0.0 <= trial["score"] <= 100.0  # sacrebleu BLEU of greedy translations
    assert result["tuner"].oracle.objective.name == "val_bleu"
