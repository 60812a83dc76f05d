"""One training run from names: a zoo preset, an objective and a corpus (what the `kerasllm
pretrain` and `kerasllm finetune` commands call).

Example (the Python equivalent of `kerasllm finetune --model bert_tiny --objective
classification --data rotten_tomatoes --model-dir runs/rt --steps 600 --batch-size 32`):

    from kerasllm.training import TrainerConfig, recipe

    config = TrainerConfig("runs/rt", steps=600, global_batch_size=32, learning_rate=1e-3)
    results = recipe.run("bert_tiny", "classification", "rotten_tomatoes", config,
                         sequence_length=64)
    results["test"]["accuracy"]
"""

from __future__ import annotations

import os

import keras
import numpy as np

from kerasllm import tokenizers as kt
from kerasllm import zoo
from kerasllm.bundle import Bundle
from kerasllm.training import distribution, inputs, objectives
from kerasllm.training.checkpointing import write_json_atomic
from kerasllm.training.config import TrainerConfig
from kerasllm.training.trainer import Trainer

TOKENIZER_DIR = "tokenizer"
BUNDLE_DIR = "bundle"


def prepare_tokenizer(
    corpus: inputs.Corpus,
    model_dir: str,
    tokenizer: str | None = None,
    vocabulary_size: int = 8000,
    is_chief: bool = True,
    multi_worker: bool = False,
) -> kt.Tokenizer:
    """The run's tokenizer: the one saved in `model_dir/tokenizer` (a resumed run), else the one
    at `tokenizer`, else a new SentencePiece tokenizer learned on the training texts. The chief
    saves it into `model_dir/tokenizer` so that a rerun, evaluation and export use the same ids.
    """
    saved = os.path.join(model_dir, TOKENIZER_DIR)
    if os.path.exists(os.path.join(saved, "tokenizer.json")):
        return kt.load(saved)
    if tokenizer is not None:
        result = kt.load(tokenizer)
    elif multi_worker:
        raise ValueError(
            "Multi-worker runs need a shared tokenizer: pass --tokenizer DIR (a saved kerasllm "
            "tokenizer), or train one in a single-process run with the same --model-dir first."
        )
    else:
        result = inputs.train_tokenizer(corpus, vocabulary_size)
    if is_chief:
        result.save(saved)
    return result


def _model_fn(preset: str, objective: objectives.Objective, tokenizer, corpus, overrides):
    kwargs = dict(overrides)
    kwargs["vocabulary_size"] = tokenizer.vocabulary_size
    if objective.name in ("classification", "token_classification"):
        kwargs.setdefault("num_classes", len(corpus.labels or []) or 2)

    def build():
        return zoo.get(preset, task=objective.task, weights=None, **kwargs)

    return build


def _greedy_samples(tokenizer, prompts, new_tokens: int):
    """`sample_fn` for causal LMs: greedy continuations of fixed prompts (full forward passes,
    no cache: only a handful of short samples per evaluation)."""

    def sample(model):
        lines = []
        for prompt in prompts:
            ids = [int(i) for i in tokenizer.tokenize(prompt).numpy()]
            ids = ids[-(model.backbone.max_sequence_length - new_tokens) :]
            for _ in range(new_tokens):
                x = np.asarray([ids], "int32")
                logits = model({"token_ids": x, "padding_mask": np.ones_like(x)}, training=False)
                ids.append(int(np.argmax(keras.ops.convert_to_numpy(logits)[0, -1])))
            text = tokenizer.detokenize(np.asarray([ids], "int32")).numpy()[0].decode()
            lines.append(text)
        return lines

    return sample


def run(
    model: str,
    objective: str,
    data: str,
    config: TrainerConfig,
    strategy: str = "auto",
    sequence_length: int = 128,
    eval_data: str | None = None,
    eval_split: str = "validation",
    test_data: str | None = None,
    tokenizer: str | None = None,
    vocabulary_size: int = 8000,
    model_overrides: dict | None = None,
    eval_steps: int | None = None,
) -> dict:
    """Trains `model` (a zoo preset) on `objective` over `data` (a corpus name or your files).

    The strategy is created first (multi-worker collectives must be configured before
    TensorFlow starts), then the corpus, the tokenizer (`prepare_tokenizer`), the datasets
    (`inputs.dataset_fn`), and the `Trainer`, which resumes from `config.model_dir`. At the end
    the model is evaluated on the test split when there is one, and the chief writes
    `model_dir/results.json` and a `kerasllm.bundle` of the final model with its tokenizer in
    `model_dir/bundle` (what `kerasllm export --model model_dir/bundle` serves).

    Args:
        model: a `kerasllm.zoo` preset name or preset JSON file.
        objective: see `kerasllm.training.objectives.OBJECTIVES`.
        data: see `kerasllm.training.inputs`.
        config: the run's `TrainerConfig`; `global_batch_size` is required.
        strategy: a `kerasllm.training.distribution.get_strategy` name.
        sequence_length: maximum tokens per example (per side for seq2seq).
        eval_data, eval_split, test_data: see `inputs.load_corpus`.
        tokenizer: a saved kerasllm tokenizer directory (default: learn one).
        vocabulary_size: size of a learned tokenizer.
        model_overrides: preset hyperparameters to change (e.g. `{"num_layers": 2}`).
        eval_steps: overrides `config.eval_steps` when given.

    Returns:
        `{"step", "train", "eval", "test"}` metrics.
    """
    if config.global_batch_size is None:
        raise ValueError("recipe.run needs config.global_batch_size (--batch-size).")
    dist = distribution.get_strategy(strategy)
    chief = distribution.is_chief(dist)
    multi_worker = distribution.worker_info(dist)[0] is not None
    objective_obj = objectives.get(objective, label_smoothing=config.label_smoothing)
    corpus = inputs.load_corpus(objective, data, eval_data, eval_split, test_data)
    if chief:
        os.makedirs(config.model_dir, exist_ok=True)
    tok = prepare_tokenizer(
        corpus, config.model_dir, tokenizer, vocabulary_size, chief, multi_worker
    )
    if eval_steps is not None:
        config.eval_steps = eval_steps

    def data_fn(examples, training):
        return inputs.dataset_fn(
            objective,
            examples,
            tok,
            config.global_batch_size,
            sequence_length,
            training=training,
            seed=config.seed,
            labels=corpus.labels,
        )

    sample_fn = None
    if objective == "causal_lm":
        prompts = [" ".join(text.split()[:8]) for text in list(corpus.eval)[:3]]
        sample_fn = _greedy_samples(tok, prompts, new_tokens=16)
    trainer = Trainer(
        _model_fn(model, objective_obj, tok, corpus, model_overrides or {}),
        objective_obj,
        config,
        strategy=dist,
        sample_fn=sample_fn,
    )
    train_size, eval_size = corpus.sizes()
    trainer.log(
        f"Data {data!r}: {train_size:,} training and {eval_size:,} evaluation examples; "
        f"tokenizer {type(tok).__name__} with {tok.vocabulary_size:,} ids."
    )
    history = trainer.fit(data_fn(corpus.train, True), data_fn(corpus.eval, False))
    history["test"] = {}
    if corpus.test is not None:
        history["test"] = trainer.evaluate(data_fn(corpus.test, False))
        trainer.log("test: " + ", ".join(f"{k}={v:.4g}" for k, v in history["test"].items()))
    if chief:
        write_json_atomic(os.path.join(config.model_dir, "results.json"), history)
        roles = ("source", "target") if objective == "seq2seq" else ("text",)
        metadata = {
            "preset": model,
            "objective": objective,
            "data": data,
            "steps": history["step"],
            "eval": history.get("eval", {}),
            "test": history["test"],
        }
        if objective == "seq2seq":
            metadata.update(source_length=sequence_length, target_length=sequence_length)
        else:
            metadata["sequence_length"] = sequence_length
        if corpus.labels:
            metadata["label_names"] = list(corpus.labels)
        path = Bundle(trainer.model, dict.fromkeys(roles, tok), metadata).save(
            os.path.join(config.model_dir, BUNDLE_DIR)
        )
        trainer.log(f"Bundle of the final model written to {path} (`kerasllm export` serves it).")
    return history
