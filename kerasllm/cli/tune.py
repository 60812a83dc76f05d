"""`kerasllm tune`: KerasTuner search over a zoo preset, trials trained by the project's trainer."""

from __future__ import annotations

import argparse
import json
import os

EPILOG = """\
examples:
  # 8 random trials of a sentiment classifier; resumes when rerun with the same --search-dir
  kerasllm tune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --search-dir runs/tune_rt --metric accuracy --max-trials 8 --steps 300 \\
      --space '{"num_layers": [1, 2], "num_heads": [2, 4], "hidden_dim": [64, 128],
                "learning_rate": [3e-4, 1e-3, 3e-3], "batch_size": [16, 32]}'

  # then train the best preset to completion (SEARCH_DIR/best)
  kerasllm tune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --search-dir runs/tune_rt --retrain-best 3000

Watch it with: tensorboard --logdir SEARCH_DIR (HParams tab).
"""


def positive_int(text: str) -> int:
    """An argparse type for counts (trials, steps, examples, sizes): an integer >= 1, so
    `--batch-size 0` is refused as "argument --batch-size: ..." rather than by a trainer
    setting the user never typed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}.")
    return value


OBJECTIVES = ("causal_lm", "masked_lm", "seq2seq", "classification", "token_classification")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="Search hyperparameters of a zoo model with KerasTuner; writes the best preset.",
        description="Random search, Hyperband or Bayesian optimization over a zoo preset's "
        "architecture and training hyperparameters. Each trial trains through the kerasllm "
        "Trainer in SEARCH_DIR/trial_<id>; the best trial is written to "
        "SEARCH_DIR/best_preset.json (load it with kerasllm.zoo.get) and best_training.json.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--model", required=True, help="zoo preset (or preset .json file) to search around."
    )
    parser.add_argument(
        "--objective",
        required=True,
        choices=OBJECTIVES,
        help="what each trial trains: a language-model objective (causal_lm, masked_lm, "
        "seq2seq) or a fine-tuning task (classification, token_classification).",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="built-in corpus (news, bible, rotten_tomatoes, wnut) or a path to your files, as "
        "in `kerasllm finetune --data`; trials are scored on its validation split.",
    )
    parser.add_argument(
        "--search-dir",
        required=True,
        help="trials, TensorBoard logs, the shared tokenizer and the best preset go here; "
        "rerun to resume.",
    )
    parser.add_argument(
        "--space",
        default={},
        type=_space_json,
        metavar="JSON_OR_FILE",
        help="JSON {name: [choices]} or a path to a JSON file; names: num_layers, num_heads, "
        "hidden_dim, intermediate_dim, dropout, learning_rate, warmup_steps, label_smoothing, "
        "batch_size (default: {}: nothing searched, every trial trains the preset as it is).",
    )
    parser.add_argument(
        "--algorithm",
        default="random",
        choices=("random", "hyperband", "bayesian"),
        help="KerasTuner search: random (random search), hyperband (successive halving; "
        "--max-trials is then its max epochs) or bayesian (Gaussian-process Bayesian "
        "optimization).",
    )
    parser.add_argument(
        "--metric",
        default="loss",
        help="validation metric to optimize: loss, accuracy, perplexity, f1 or bleu (seq2seq); "
        "loss and perplexity are minimized, the others maximized.",
    )
    parser.add_argument(
        "--max-trials",
        type=positive_int,
        default=10,
        help="trials of random search and Bayesian optimization (Hyperband: max epochs).",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=200, help="updates per trial (Hyperband: per epoch)."
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="global batch size of every trial, unless --space searches batch_size.",
    )
    parser.add_argument(
        "--sequence-length",
        type=positive_int,
        default=128,
        help="tokens per example (longer ones are truncated).",
    )
    parser.add_argument(
        "--eval-steps",
        type=positive_int,
        help="evaluation batches per trial (default: the whole validation split).",
    )
    parser.add_argument(
        "--max-train-examples",
        type=positive_int,
        metavar="N",
        help="train on only the first N training examples, for a quick search (default: all).",
    )
    parser.add_argument(
        "--max-eval-examples",
        type=positive_int,
        metavar="N",
        help="score trials on only the first N validation examples (default: all).",
    )
    parser.add_argument(
        "--tokenizer",
        help="a saved kerasllm tokenizer directory (default: learn one from the training "
        "data, shared by all trials in SEARCH_DIR/tokenizer).",
    )
    parser.add_argument(
        "--vocabulary-size",
        type=positive_int,
        default=8000,
        help="size of the tokenizer learned when no --tokenizer is given.",
    )
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"),
        help="tf.distribute strategy of every trial (auto: TF_CONFIG -> multi-worker, several "
        "GPUs -> mirrored).",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the tuner's choices and of every trial's training.",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete SEARCH_DIR and start over; no resume."
    )
    parser.add_argument(
        "--retrain-best",
        type=positive_int,
        metavar="STEPS",
        help="train SEARCH_DIR/best_preset.json with the best training values for STEPS "
        "updates into SEARCH_DIR/best, after the search, which resumes or is already done "
        "(default: no retraining).",
    )
    parser.set_defaults(func=_run)


def _space_json(text: str) -> dict:
    """`--space`'s value: inline JSON (starting with "{") or the path of a JSON file, holding
    an object of lists. Checked while the arguments are parsed, so a typo ends in argparse's
    one-line "argument --space: ..." usage error (exit status 2) before anything loads; the
    names and values are checked by `SearchSpace` when the search starts.

    Raises:
        argparse.ArgumentTypeError: the JSON does not parse (the message quotes the JSON
            problem and where), the file does not exist, or it is not {name: [choices]}.
    """
    from kerasllm.utils.files import read_json

    if text.strip().startswith("{"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    elif not os.path.isfile(text):
        raise argparse.ArgumentTypeError(
            f"no file {text!r}; give inline JSON starting with '{{' or a JSON file's path."
        )
    else:
        try:
            values = read_json(text, "file")
        except ValueError as error:
            raise argparse.ArgumentTypeError(" ".join(str(error).split())) from None
    if not isinstance(values, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object {{name: [choices]}}, got {type(values).__name__}."
        )
    for name, choices in values.items():
        if not isinstance(choices, list):
            raise argparse.ArgumentTypeError(
                f"{name!r} must be a list of choices, e.g. [1, 2]; got {choices!r}."
            )
    return values


def _space(values: dict, model: str):
    """The `SearchSpace` of `--space`'s parsed `values`, checked against the preset `model`
    before any data loads; its errors name the flag."""
    from kerasllm import zoo
    from kerasllm.tuning import SearchSpace

    zoo.get_preset(model)  # an unknown --model is reported as such, not as a --space error
    try:
        space = SearchSpace.from_dict(values)
        space.validate(model)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--space: {error}") from None
    return space


def _run(args) -> int:
    from kerasllm.tuning import retrain_best, run_search

    result = run_search(
        args.model,
        args.objective,
        args.data,
        args.search_dir,
        _space(args.space, args.model),
        algorithm=args.algorithm,
        metric=args.metric,
        max_trials=args.max_trials,
        steps=args.steps,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        strategy=args.strategy,
        eval_steps=args.eval_steps,
        tokenizer=args.tokenizer,
        vocabulary_size=args.vocabulary_size,
        max_train_examples=args.max_train_examples,
        max_eval_examples=args.max_eval_examples,
        overwrite=args.overwrite,
        seed=args.seed,
    )
    print(f"best {result['objective']:.4g}: {json.dumps(result['best_values'])}")
    print(f"wrote {result['best_preset']} and {result['best_training']}")
    if args.retrain_best:
        history = retrain_best(args.search_dir, args.retrain_best, strategy=args.strategy)
        print(json.dumps({k: history[k] for k in ("step", "eval", "test")}, default=float))
    return 0
