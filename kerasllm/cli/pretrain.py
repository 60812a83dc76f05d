"""`kerasllm pretrain`: pretrain a zoo model with masked LM, causal LM or seq2seq.

The arguments shared with `kerasllm finetune` are defined here (`add_common_arguments`,
`run_from_args`).
"""

from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  # a small GPT-style decoder on the news corpus (Ctrl-C or a crash: rerun the same command
  # and it resumes from the last checkpoint in --model-dir)
  kerasllm pretrain --model gpt_tiny --objective causal_lm --data news \\
      --model-dir runs/gpt_news --steps 2000 --batch-size 32 --learning-rate 1e-3

  # BERT-style masked LM on your own text (one document per line)
  kerasllm pretrain --model bert_tiny --objective masked_lm --data my_corpus.txt \\
      --model-dir runs/bert_mine --steps 10000 --batch-size 64 --precision mixed_bfloat16

  # two GPUs on one machine, or several machines (set TF_CONFIG on each)
  kerasllm pretrain ... --strategy mirrored
  kerasllm pretrain ... --strategy multi_worker_mirrored

Watch it with: tensorboard --logdir runs/
"""


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_common_arguments(parser: argparse.ArgumentParser, objectives, default_lr: float) -> None:
    """Arguments of both `pretrain` and `finetune`."""
    what = parser.add_argument_group("what to train")
    what.add_argument(
        "--model", required=True, help="zoo preset (see `kerasllm zoo list`), e.g. gpt_tiny."
    )
    what.add_argument("--objective", required=True, choices=objectives, help="training objective.")
    what.add_argument(
        "--data",
        required=True,
        help="built-in corpus (news, bible, rotten_tomatoes, wnut) or a path to your files: "
        ".txt file/directory (language models), .csv with text,label columns (classification), "
        "CoNLL file (token classification), .tsv source<TAB>target (seq2seq).",
    )
    what.add_argument(
        "--eval-data", help="your own evaluation file (default: every 20th example held out)."
    )
    what.add_argument(
        "--eval-split",
        default="validation",
        choices=("validation", "test"),
        help="split of a built-in corpus evaluated during training (default: validation).",
    )
    what.add_argument("--test-data", help="your own test file, evaluated at the end.")
    what.add_argument(
        "--model-dir",
        required=True,
        help="checkpoints, TensorBoard logs and the tokenizer go here; rerun to resume.",
    )
    what.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="change a preset hyperparameter, e.g. --set num_layers=2 --set dropout=0.0.",
    )
    what.add_argument(
        "--tokenizer", help="a saved kerasllm tokenizer directory (default: learn one)."
    )
    what.add_argument(
        "--vocabulary-size", type=int, default=8000, help="size of a learned tokenizer."
    )
    what.add_argument(
        "--sequence-length", type=int, default=128, help="tokens per example (default 128)."
    )

    how = parser.add_argument_group("how long and how fast")
    how.add_argument("--steps", type=int, default=1000, help="optimizer updates (default 1000).")
    how.add_argument(
        "--batch-size", type=int, default=32, help="global batch size over all replicas."
    )
    how.add_argument("--learning-rate", type=float, default=default_lr, help="peak learning rate.")
    how.add_argument("--warmup-steps", type=int, default=0, help="linear warmup updates.")
    how.add_argument(
        "--decay",
        default="linear",
        choices=("constant", "linear", "cosine", "inverse_sqrt"),
        help="learning-rate decay after warmup (default linear to 0).",
    )
    how.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay.")
    how.add_argument(
        "--clipnorm", type=float, default=1.0, help="global gradient-norm clip (0 disables)."
    )
    how.add_argument("--accumulation-steps", type=int, default=1, help="batches summed per update.")
    how.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy smoothing.")
    how.add_argument(
        "--strategy",
        default="auto",
        choices=("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"),
        help="tf.distribute strategy (auto: TF_CONFIG -> multi-worker, several GPUs -> mirrored).",
    )
    how.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        help="mixed_float16 uses dynamic loss scaling.",
    )
    how.add_argument("--xla", action="store_true", help="compile the step with XLA.")
    how.add_argument("--seed", type=int, default=0, help="random seed.")

    io = parser.add_argument_group("checkpoints, evaluation and logs")
    io.add_argument("--checkpoint-every", type=int, default=500, help="updates between saves.")
    io.add_argument("--keep-checkpoints", type=int, default=3, help="recent checkpoints kept.")
    io.add_argument(
        "--eval-every", type=int, help="updates between evaluations (default: at the end)."
    )
    io.add_argument("--eval-steps", type=int, help="batches per evaluation (default: all).")
    io.add_argument("--log-every", type=int, default=50, help="updates between log lines.")
    io.add_argument(
        "--profile-steps",
        type=int,
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="record a TensorBoard profiler trace between these updates.",
    )
    io.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2), help="1 progress bar, 2 lines."
    )


def config_from_args(args, **extra):
    """The `TrainerConfig` the parsed arguments describe."""
    from kerasllm.training import TrainerConfig

    return TrainerConfig(
        model_dir=args.model_dir,
        steps=args.steps,
        global_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        decay=args.decay,
        weight_decay=args.weight_decay,
        clipnorm=args.clipnorm or None,
        accumulation_steps=args.accumulation_steps,
        label_smoothing=args.label_smoothing,
        precision=args.precision,
        jit_compile=args.xla,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_every=args.eval_every,
        eval_steps=args.eval_steps,
        log_every=args.log_every,
        profile_steps=tuple(args.profile_steps) if args.profile_steps else None,
        verbose=args.verbose,
        **extra,
    )


def run_from_args(args, config) -> int:
    from kerasllm.training import recipe

    recipe.run(
        args.model,
        args.objective,
        args.data,
        config,
        strategy=args.strategy,
        sequence_length=args.sequence_length,
        eval_data=args.eval_data,
        eval_split=args.eval_split,
        test_data=args.test_data,
        tokenizer=args.tokenizer,
        vocabulary_size=args.vocabulary_size,
        model_overrides=dict(args.overrides),
    )
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="Pretrain a zoo model (masked LM, causal LM, seq2seq); resumes when rerun.",
        description="Pretrain a zoo model from scratch on a built-in corpus or your own text. "
        "Checkpoints, TensorBoard logs and the learned tokenizer are written to --model-dir; "
        "running the same command again resumes from the newest checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, ("causal_lm", "masked_lm", "seq2seq"), default_lr=1e-3)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    return run_from_args(args, config_from_args(args))
