"""A whole search from names (what `kerasllm tune` calls), the best preset, and its retraining.

Example (the Python equivalent of `kerasllm tune --model bert_tiny --objective classification
--data rotten_tomatoes --search-dir runs/tune_rt --space '{"num_layers": [1, 2]}' --metric
accuracy --max-trials 8 --steps 300`):

    from kerasllm.tuning import SearchSpace, run_search, retrain_best

    result = run_search("bert_tiny", "classification", "rotten_tomatoes", "runs/tune_rt",
                        SearchSpace(num_layers=[1, 2], learning_rate=[3e-4, 1e-3]),
                        metric="accuracy", max_trials=8, steps=300, batch_size=32)
    retrain_best("runs/tune_rt", steps=3000)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

from kerasllm import tokenizers, zoo
from kerasllm.training import TrainerConfig, distribution, inputs, recipe
from kerasllm.tuning.hypermodel import ZooHyperModel
from kerasllm.tuning.space import SearchSpace
from kerasllm.tuning.tuners import TrialData, make_tuner

BEST_PRESET = "best_preset.json"
#: Beside the preset: the best training values and what the search trained on.
BEST_TRAINING = "best_training.json"


def _take(examples, count: int | None):
    if count is None:
        return examples
    if isinstance(examples, tuple):
        return tuple(list(column)[:count] for column in examples)
    return list(examples)[:count]


def run_search(
    model: str,
    objective: str,
    data: str,
    search_dir: str,
    space: SearchSpace,
    algorithm: str = "random",
    metric: str = "loss",
    max_trials: int = 10,
    steps: int = 200,
    batch_size: int = 32,
    sequence_length: int = 128,
    strategy: str = "auto",
    eval_split: str = "validation",
    eval_steps: int | None = None,
    tokenizer: str | None = None,
    vocabulary_size: int = 8000,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    hyperband_factor: int = 3,
    overwrite: bool = False,
    seed: int = 0,
    base_config: TrainerConfig | None = None,
    best_name: str | None = None,
) -> dict:
    """Searches `space` around the zoo preset `model` and writes the best trial as a preset.

    Data and tokenizer come from `kerasllm.training.inputs` and `recipe.prepare_tokenizer`
    exactly as in `kerasllm finetune` (the tokenizer is saved in `search_dir/tokenizer` and shared
    by all trials). Rerunning with the same `search_dir` resumes: finished trials are kept.

    Args:
        model: zoo preset name or preset JSON file.
        objective: `kerasllm.training` objective name.
        data: built-in corpus name or path (see `kerasllm.training.inputs`).
        search_dir: the search's folder (trials, tokenizer, best preset, TensorBoard logs).
        space: the `SearchSpace`.
        algorithm: "random", "hyperband" or "bayesian".
        metric: evaluation metric to optimize ("loss", "accuracy", "perplexity", "f1", "bleu").
        max_trials: trials of random search and Bayesian optimization.
        steps: updates per trial; for Hyperband, per epoch (`max_trials` is then Hyperband's
            `max_epochs`).
        batch_size: global batch size when `space.batch_size` is not searched.
        sequence_length: tokens per example.
        strategy: `kerasllm.training.distribution.get_strategy` name.
        eval_split: built-in corpus split evaluated ("validation" by default: never tune on test).
        eval_steps: evaluation batches per trial (None: the whole split).
        tokenizer: a saved kerasllm tokenizer directory (default: learn one).
        vocabulary_size: size of a learned tokenizer.
        max_train_examples, max_eval_examples: use only the first N examples (quick searches).
        hyperband_factor: Hyperband's reduction factor.
        overwrite: start over instead of resuming.
        seed: the tuner's and the trainer's seed.
        base_config: other trainer settings of every trial (e.g. weight decay, precision);
            `model_dir` and `steps` are replaced per trial.
        best_name: name of the best preset (default `<model>_tuned`).

    Returns:
        `{"best_preset": path, "best_training": path, "best_values": {...}, "objective": value,
        "trials": [{"trial_id", "status", "score", "values"}, ...]}`.
    """
    dist = distribution.get_strategy(strategy)
    corpus = inputs.load_corpus(objective, data, eval_split=eval_split)
    corpus.train = _take(corpus.train, max_train_examples)
    corpus.eval = _take(corpus.eval, max_eval_examples)
    if overwrite and os.path.isdir(search_dir):
        # Cleared here rather than by KerasTuner, which would also delete the new tokenizer.
        shutil.rmtree(search_dir)
    os.makedirs(search_dir, exist_ok=True)
    tok = recipe.prepare_tokenizer(corpus, search_dir, tokenizer, vocabulary_size)
    tokenizer_dir = os.path.join(os.path.abspath(search_dir), recipe.TOKENIZER_DIR)
    hypermodel = ZooHyperModel(
        model, objective, space, tok.vocabulary_size, num_classes=len(corpus.labels or []) or None
    )
    base = base_config or TrainerConfig(search_dir, steps=steps)
    base = dataclasses.replace(
        base,
        global_batch_size=batch_size,
        seed=seed,
        eval_steps=eval_steps,
        log_every=min(base.log_every, steps),
        verbose=0 if base_config is None else base.verbose,
    )
    trial_data = TrialData(
        objective, corpus.train, corpus.eval, tokenizer_dir, sequence_length, corpus.labels
    )
    budget = (
        {"max_epochs": max_trials, "factor": hyperband_factor}
        if algorithm == "hyperband"
        else {"max_trials": max_trials}
    )
    tuner = make_tuner(
        algorithm,
        hypermodel,
        trial_data,
        base,
        metric=metric,
        steps=steps,
        search_dir=search_dir,
        strategy=dist,
        overwrite=False,
        seed=seed,
        **budget,
    )
    tuner.search()
    result = write_best(
        tuner,
        best_name or f"{zoo.get_preset(model).name}_tuned",
        run={
            "objective": objective,
            "data": data,
            "sequence_length": sequence_length,
            "tokenizer": tokenizer_dir,
            "eval_split": eval_split,
        },
    )
    result["trials"] = [
        {
            "trial_id": t.trial_id,
            "status": t.status,
            "score": t.score,
            "values": {k: v for k, v in t.hyperparameters.values.items()},
        }
        for t in tuner.oracle.trials.values()
    ]
    result["tuner"] = tuner
    return result


def _tokenizer_spec(run: dict | None, vocabulary_size: int) -> dict | None:
    """The preset's tokenizer entry: the search's saved tokenizer, so `zoo.get_tokenizer` works."""
    path = (run or {}).get("tokenizer")
    if not path:
        return None
    kind = type(tokenizers.load(path)).__name__
    return {"kind": kind, "vocabulary_size": vocabulary_size, "path": path}


def write_best(tuner, name: str, run: dict | None = None) -> dict:
    """Writes the best trial as `best_preset.json` (a zoo preset) and `best_training.json`.

    Args:
        tuner: a finished `kerasllm.tuning` tuner.
        name: the preset's name.
        run: what the search trained on (objective, data, sequence length, tokenizer), stored
            beside the training values so `retrain_best` can repeat it.
    """
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ValueError(
            f"No trial of the search in {tuner.project_dir} completed; see the trials' "
            "`trial.json` messages."
        )
    trial = best[0]
    hp = trial.hyperparameters
    hypermodel: ZooHyperModel = tuner.hypermodel
    objective = tuner.oracle.objective
    base = zoo.get_preset(hypermodel.preset)
    preset = zoo.Preset(
        name=name,
        family=base.family,
        config=hypermodel.best_config(hp),
        description=(
            f"{base.name} tuned by {type(tuner).__name__}: trial {trial.trial_id}, "
            f"{objective.name}={trial.score:.4g}"
        ),
        tokenizer=_tokenizer_spec(run, hypermodel.vocabulary_size) or base.tokenizer,
    )
    preset_path = zoo.save_preset_file(preset, os.path.join(tuner.project_dir, BEST_PRESET))
    config = hypermodel.trainer_config(hp, tuner.base_config)
    training = {
        "trial_id": trial.trial_id,
        "objective_name": objective.name,
        "objective_value": trial.score,
        "learning_rate": config.learning_rate,
        "warmup_steps": config.warmup_steps,
        "label_smoothing": config.label_smoothing,
        "batch_size": config.global_batch_size,
        "run": run or {},
    }
    training_path = os.path.join(tuner.project_dir, BEST_TRAINING)
    with open(training_path, "w") as f:
        json.dump(training, f, indent=2, sort_keys=True)
        f.write("\n")
    return {
        "best_preset": str(preset_path),
        "best_training": training_path,
        "best_values": dict(hp.values),
        "objective": trial.score,
    }


def retrain_best(
    search_dir: str,
    steps: int,
    model_dir: str | None = None,
    strategy: str = "auto",
    base_config: TrainerConfig | None = None,
) -> dict:
    """Trains the best preset of a search to completion with its best training values.

    Runs `kerasllm.training.recipe.run` on `search_dir/best_preset.json` with the search's
    objective, data, sequence length and tokenizer; resumes when `model_dir` already holds a run.

    Args:
        search_dir: a finished search's folder.
        steps: training updates.
        model_dir: where the run goes (default `search_dir/best`).
        strategy: distribution strategy name.
        base_config: other trainer settings (`model_dir`, `steps` and the tuned values replaced).

    Returns:
        `recipe.run`'s `{"step", "train", "eval", "test"}`.
    """
    preset_path = os.path.join(search_dir, BEST_PRESET)
    training_path = os.path.join(search_dir, BEST_TRAINING)
    for path in (preset_path, training_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found; run the search in {search_dir} first.")
    with open(training_path) as f:
        best = json.load(f)
    run = best["run"]
    model_dir = model_dir or os.path.join(search_dir, "best")
    config = dataclasses.replace(
        base_config or TrainerConfig(model_dir, steps=steps),
        model_dir=model_dir,
        steps=steps,
        global_batch_size=best["batch_size"],
        learning_rate=best["learning_rate"],
        warmup_steps=best["warmup_steps"],
        label_smoothing=best["label_smoothing"],
    )
    return recipe.run(
        preset_path,
        run["objective"],
        run["data"],
        config,
        strategy=strategy,
        sequence_length=run["sequence_length"],
        eval_split=run.get("eval_split", "validation"),
        tokenizer=run["tokenizer"],
    )
