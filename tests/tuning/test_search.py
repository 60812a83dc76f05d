"""A tiny real search on Rotten Tomatoes: completes, reloads its best preset, resumes."""

import json
import os

import pytest
from tuning_helpers import tiny_search

from kerasllm import zoo
from kerasllm.tuning import BEST_PRESET, BEST_TRAINING, SearchSpace

SPACE = SearchSpace(
    num_layers=[1],
    num_heads=[2],
    hidden_dim=[16, 32],
    intermediate_dim=[32],
    dropout=[0.0],
    learning_rate=[1e-3, 3e-3],
)


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """Two trials, then a second tuner on the same directory asking for three."""
    search_dir = str(tmp_path_factory.mktemp("tune") / "search")
    first = tiny_search(search_dir, SPACE, max_trials=2, steps=4)
    second = tiny_search(search_dir, SPACE, max_trials=3, steps=4)
    return search_dir, first, second


def test_search_completes_and_best_preset_reloads(searches):
    search_dir, _, result = searches
    completed = [t for t in result["trials"] if t["status"] == "COMPLETED"]
    assert len(completed) == 3
    assert all(0.0 <= t["score"] <= 1.0 for t in completed)
    # The best trial is the one with the highest validation accuracy.
    assert result["objective"] == max(t["score"] for t in completed)
    # Every trial trained through the Trainer in its own folder, with HParams and eval logs.
    for trial in completed:
        trial_dir = os.path.join(search_dir, f"trial_{trial['trial_id']}")
        assert os.path.exists(os.path.join(trial_dir, "config.json"))
        assert os.listdir(os.path.join(trial_dir, "eval"))

    preset_path = os.path.join(search_dir, BEST_PRESET)
    model = zoo.get(preset_path, task="classifier", num_classes=2, weights=None)
    best = result["best_values"]
    assert model.backbone.hidden_dim == best["hidden_dim"]
    assert model.backbone.num_layers == 1
    assert model.backbone.vocabulary_size == zoo.get_tokenizer(preset_path).vocabulary_size
    with open(os.path.join(search_dir, BEST_TRAINING)) as f:
        training = json.load(f)
    assert training["learning_rate"] == best["learning_rate"]
    assert training["batch_size"] == 16
    assert training["run"]["objective"] == "classification"


def test_resumed_search_does_not_rerun_finished_trials(searches):
    _, first, second = searches
    assert first["tuner"].trials_run == ["0", "1"]
    # The second tuner reloaded trials 0 and 1 from disk and trained only the new one.
    assert second["tuner"].trials_run == ["2"]
    assert {t["trial_id"] for t in first["trials"]} < {t["trial_id"] for t in second["trials"]}
