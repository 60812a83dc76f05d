"""TensorBoard HParams dashboard for a search: the space once, each trial's values per trial.

`tensorboard --logdir SEARCH_DIR` shows every trial as a run (`trial_<id>`) whose `train/` and
`eval/` scalars the `Trainer` wrote; the HParams tab lists the trials with their values and
evaluation metrics.
"""

from __future__ import annotations

import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from kerasllm.tuning.space import SearchSpace

#: Evaluation metrics shown in the HParams table (the ones an objective does not produce are
#: left empty by TensorBoard).
METRICS = ("loss", "accuracy", "perplexity", "f1", "bleu")


def _trial_values(values: dict) -> dict:
    # KerasTuner's bookkeeping values ("tuner/epochs", ...) are not hyperparameters.
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def write_config(search_dir: str, space: SearchSpace, metric: str) -> None:
    """Writes the HParams experiment config (domains and metrics) into `search_dir`."""
    params = []
    for name, values in space.to_dict().items():
        if any(isinstance(v, float) for v in values):
            values = [float(v) for v in values]  # a Discrete domain holds one type
        params.append(hparams_api.HParam(name, hparams_api.Discrete(sorted(values))))
    metrics = [
        hparams_api.Metric(name, group="eval", display_name=f"val_{name}")
        for name in sorted(set(METRICS) | {metric})
    ]
    with tf.summary.create_file_writer(search_dir).as_default():
        hparams_api.hparams_config(hparams=params, metrics=metrics)


def write_trial(trial_dir: str, values: dict, trial_id: str) -> None:
    """Writes one trial's hyperparameter values into its run folder."""
    writer = tf.summary.create_file_writer(trial_dir)
    with writer.as_default():
        hparams_api.hparams(_trial_values(values), trial_id=f"trial_{trial_id}")
    writer.close()
