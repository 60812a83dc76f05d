"""`kerasllm tune`: KerasTuner search over a zoo preset, trials trained by the project's trainer."""

from __future__ import annotations

import argparse
import json

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


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="Search hyperparameters of a zoo model with KerasTuner; writes the best preset.",
        description="Random search, Hyperband or Bayesian optimization over a zoo preset's "
        "architecture and training hyperparameters. Each trial trains through the kerasllm "
        "Trainer in SEARCH_DIR/trial_<id>; the best trial is written to "
        "SEARCH_DIR/best_preset.json (load it with kerasllm.zoo.get) and best_training.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="zoo preset to search around.")
    parser.add_argument(
        "--objective",
        required=True,
        choices=("causal_lm", "masked_lm", "seq2seq", "classification", "token_classification"),
    )
    parser.add_argument("--data", required=True, help="built-in corpus or your files.")
    parser.add_argument("--search-dir", required=True, help="trials, logs and the best preset.")
    parser.add_argument(
        "--space",
        default="{}",
        help="JSON {name: [choices]} or a path to a JSON file; names: num_layers, num_heads, "
        "hidden_dim, intermediate_dim, dropout, learning_rate, warmup_steps, label_smoothing, "
        "batch_size.",
    )
    parser.add_argument(
        "--algorithm", default="random", choices=("random", "hyperband", "bayesian")
    )
    parser.add_argument(
        "--metric", default="loss", help="loss, accuracy, perplexity, f1 or bleu (seq2seq)."
    )
    parser.add_argument(
        "--max-trials", type=int, default=10, help="trials (Hyperband: max epochs)."
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="updates per trial (Hyperband: per epoch)."
    )
    parser.add_argument("--batch-size", type=int, default=32, help="when not searched.")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--eval-steps", type=int, help="evaluation batches per trial.")
    parser.add_argument("--max-train-examples", type=int)
    parser.add_argument("--max-eval-examples", type=int)
    parser.add_argument("--tokenizer", help="a saved kerasllm tokenizer (default: learn one).")
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="start over, do not resume.")
    parser.add_argument(
        "--retrain-best",
        type=int,
        metavar="STEPS",
        help="train SEARCH_DIR/best_preset.json with the best training values for STEPS "
        "updates into SEARCH_DIR/best (after the search, which resumes or is already done).",
    )
    parser.set_defaults(func=_run)


def _space(text: str):
    from kerasllm.tuning import SearchSpace

    if text.strip().startswith("{"):
        values = json.loads(text)
    else:
        with open(text) as f:
            values = json.load(f)
    return SearchSpace.from_dict(values)


def _run(args) -> int:
    from kerasllm.tuning import retrain_best, run_search

    result = run_search(
        args.model,
        args.objective,
        args.data,
        args.search_dir,
        _space(args.space),
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
