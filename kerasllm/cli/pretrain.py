"""`kerasllm pretrain`: pretrain a zoo model with masked LM, causal LM or seq2seq.

The arguments shared with `kerasllm finetune` are defined here (`add_common_arguments`,
`run_from_args`).
"""

from __future__ import annotations

import argparse
import json
import os
import re

# Mirrors `kerasllm.training.recipe.PRETRAINED_DEFAULTS["learning_rate"]` for --help without
# importing TensorFlow (a test checks they agree).
PRETRAINED_LEARNING_RATE = 1e-4

EPILOG = """\
examples:
  # a small GPT-style decoder on the news corpus (Ctrl-C or a crash: rerun the same command
  # and it resumes from the last checkpoint in --model-dir)
  kerasllm pretrain --model gpt_tiny --objective causal_lm --data news \\
      --model-dir runs/gpt_news --steps 2000 --batch-size 32 --learning-rate 1e-3

  # BERT-style masked LM on your own text (one document per line)
  kerasllm pretrain --model bert_tiny --objective masked_lm --data my_corpus.txt \\
      --model-dir runs/bert_mine --steps 10000 --batch-size 64 --precision mixed_bfloat16

  # BERT's pretraining: masked LM + next-sentence prediction on sentence pairs of the news
  # articles (reports accuracy and nsp_accuracy); then fine-tune from it with
  # kerasllm finetune --init-from runs/bert_nsp --tokenizer runs/bert_nsp/tokenizer ...
  kerasllm pretrain --model bert_tiny --objective masked_lm --data news \\
      --next-sentence-prediction --model-dir runs/bert_nsp --steps 2000

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
    what.add_argument(
        "--objective",
        choices=objectives,
        help="training objective (default: the only one a built-in --data corpus serves, e.g. "
        "classification for rotten_tomatoes; required otherwise).",
    )
    parser.set_defaults(objective_choices=tuple(objectives))
    what.add_argument(
        "--data",
        required=True,
        help="built-in corpus (news, news_headlines, bible, rotten_tomatoes, wnut) or a path to "
        "your files: .txt file/directory (language models), .csv with text,label columns "
        "(classification; text_a,text_b,label for sentence pairs), CoNLL file (token "
        "classification), .tsv source<TAB>target (seq2seq).",
    )
    what.add_argument(
        "--eval-data", help="your own evaluation file (default: every 20th example held out)."
    )
    what.add_argument(
        "--eval-split",
        default="validation",
        choices=("validation", "test"),
        help="split of a built-in corpus evaluated during training.",
    )
    what.add_argument(
        "--test-data",
        help="your own test file, evaluated at the end (default: a built-in corpus's test "
        "split; none for your own --data).",
    )
    what.add_argument(
        "--model-dir",
        help="checkpoints, TensorBoard logs and the tokenizer go here; rerun to resume "
        "(default: runs/COMMAND_MODEL_DATA, e.g. runs/finetune_minilm_l6_rotten_tomatoes).",
    )
    what.add_argument(
        "--set",
        "--override",  # the spelling `kerasllm compress distill` documents for its student
        dest="overrides",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="change a preset hyperparameter, e.g. --set num_layers=2 --set norm_first=true "
        "(repeatable; --override is the same flag; default: the preset's own values).",
    )
    what.add_argument(
        "--tokenizer",
        help="a saved kerasllm tokenizer directory (default: the preset's own when starting "
        "from its pretrained weights, else learn one).",
    )
    what.add_argument(
        "--vocabulary-size",
        type=int,
        help="size of a learned tokenizer (default: 8000; not with pretrained weights).",
    )
    what.add_argument("--sequence-length", type=int, default=128, help="tokens per example.")
    what.add_argument(
        "--target-length",
        type=int,
        default=None,
        help="decoder tokens per example for seq2seq, span_corruption and denoising (default: "
        "seq2seq --sequence-length; the others the longest target of their chunks).",
    )

    how = parser.add_argument_group("how long and how fast")
    how.add_argument(
        "--steps",
        type=int,
        help=f"optimizer updates (default: {SCRATCH_STEPS}; three epochs when starting from "
        "pretrained weights).",
    )
    how.add_argument(
        "--batch-size", type=int, default=32, help="global batch size over all replicas."
    )
    how.add_argument(
        "--learning-rate",
        type=float,
        help=f"peak learning rate (default: {default_lr:g}"
        + (
            f"; {PRETRAINED_LEARNING_RATE:g} when starting from pretrained weights)."
            if "classification" in objectives
            else ")."
        ),
    )
    how.add_argument(
        "--warmup-steps",
        type=int,
        help="linear warmup updates (default: 0; 10%% of the steps from pretrained weights).",
    )
    parser.set_defaults(default_learning_rate=default_lr)
    how.add_argument(
        "--decay",
        default="linear",
        choices=("constant", "linear", "cosine", "inverse_sqrt"),
        help="learning-rate schedule after warmup (linear and cosine decay to 0 at --steps).",
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
        default="auto",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
        help="default: auto, the fastest for the hardware (mixed_bfloat16 on CPUs with AMX or "
        "AVX-512 BF16 and on GPUs of compute capability >= 8.0, mixed_float16 on 7.x GPUs, "
        "float32 otherwise; the choice is printed). mixed_float16 uses dynamic loss scaling.",
    )
    how.add_argument(
        "--jit-compile",
        default="auto",
        choices=("auto", "on", "off"),
        help="compile the training step with XLA; default: auto (on for GPUs and TPUs, off on "
        "CPUs, where it measured slower).",
    )
    how.add_argument(
        "--xla",
        dest="jit_compile",
        action="store_const",
        const="on",
        help="same as --jit-compile on (default: --jit-compile decides).",
    )
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
        help="record a TensorBoard profiler trace between these updates (default: no trace).",
    )
    io.add_argument(
        "--early-stopping-patience",
        type=int,
        metavar="N",
        help="stop (with a checkpoint) once --early-stopping-metric has not improved for N "
        "evaluations in a row; needs --eval-every (default: never stop early).",
    )
    io.add_argument(
        "--early-stopping-metric",
        default="val_loss",
        help="what early stopping watches, named as in Keras: val_loss, val_accuracy, val_f1, "
        "val_perplexity, ...",
    )
    io.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="1: a progress line refreshed by time (plain lines when redirected); 2: one line "
        "per --log-every; 0: quiet. TensorFlow's own log lines: `kerasllm --verbose COMMAND`.",
    )


SCRATCH_STEPS = 1000

# `TrainerConfig` fields whose flag is not `--` + the field's name with dashes.
_FLAG_OF_FIELD = {
    "global_batch_size": "--batch-size",
    "jit_compile": "--jit-compile",
    "init_checkpoint": "--init-from",
}


def name_flags(message: str) -> str:
    """`message` (a `TrainerConfig` error naming a field, e.g. "`global_batch_size` must be a
    positive integer") with the fields named by the flags a user of the command line typed
    ("--batch-size must be ...")."""

    def flag(match: re.Match) -> str:
        field = match.group(1)
        return _FLAG_OF_FIELD.get(field, "--" + field.replace("_", "-"))

    return re.sub(r"`([a-z_]+)`", flag, message)


def resolve_objective(args) -> str:
    """`--objective`, or the one objective of the command that the built-in `--data` serves.

    Sets `args.objective` and returns it.

    Raises:
        ValueError: no --objective and the data does not determine one (the message lists the
            choices).
    """
    if args.objective is None:
        from kerasllm.training.inputs import BUILT_IN

        served = [o for o in BUILT_IN.get(args.data, ()) if o in args.objective_choices]
        if len(served) != 1:
            choices = served or list(args.objective_choices)
            raise ValueError(
                f"--objective is required with --data {args.data}; choose one of {choices}."
            )
        args.objective = served[0]
    return args.objective


def default_model_dir(args) -> str:
    """`runs/COMMAND_MODEL_DATA` for a run given no --model-dir: the model and data names (or
    the stems of their paths), with any character other than letters, digits, `.`, `_` and
    `-` replaced, so the same command resumes in the same folder."""
    import re
    from pathlib import PurePath

    def part(value) -> str:
        name = PurePath(str(value)).stem if value else "none"
        return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "none"

    command = getattr(args, "command", None) or "run"
    return os.path.join("runs", f"{command}_{part(args.model)}_{part(args.data)}")


def config_from_args(args, pretrained: bool = False, **extra):
    """The `TrainerConfig` the parsed arguments describe.

    Options left out take the defaults of the run's start: `SCRATCH_STEPS`, the command's
    learning rate and no warmup from scratch; `recipe.PRETRAINED_DEFAULTS` from pretrained
    weights (where `recipe.run` sets the steps from the epochs once the data is loaded).
    """
    from kerasllm.training import TrainerConfig
    from kerasllm.training.recipe import PRETRAINED_DEFAULTS

    learning_rate = args.learning_rate
    if learning_rate is None:
        learning_rate = (
            PRETRAINED_DEFAULTS["learning_rate"] if pretrained else args.default_learning_rate
        )
    if args.model_dir is None:
        args.model_dir = default_model_dir(args)
        print(f"Writing to {args.model_dir} (no --model-dir given).", flush=True)
    fields = dict(
        model_dir=args.model_dir,
        steps=SCRATCH_STEPS if args.steps is None else args.steps,
        global_batch_size=args.batch_size,
        learning_rate=learning_rate,
        warmup_steps=0 if args.warmup_steps is None else args.warmup_steps,
        decay=args.decay,
        weight_decay=args.weight_decay,
        clipnorm=args.clipnorm or None,
        accumulation_steps=args.accumulation_steps,
        label_smoothing=args.label_smoothing,
        precision=args.precision,
        jit_compile={"on": True, "off": False}.get(args.jit_compile, args.jit_compile),
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_every=args.eval_every,
        eval_steps=args.eval_steps,
        log_every=args.log_every,
        profile_steps=tuple(args.profile_steps) if args.profile_steps else None,
        early_stopping_patience=args.early_stopping_patience,
        early_stopping_metric=args.early_stopping_metric,
        verbose=args.verbose,
        **extra,
    )
    try:
        return TrainerConfig(**fields)
    except ValueError as error:
        raise ValueError(name_flags(str(error))) from None


def run_from_args(args, config, pretrained: bool = False, from_scratch: bool = False) -> int:
    """Runs `recipe.run` with the parsed arguments; a pretrained start without --steps or
    --warmup-steps trains `recipe.PRETRAINED_DEFAULTS`' epochs with its warmup fraction."""
    from kerasllm.training import recipe

    defaults = recipe.PRETRAINED_DEFAULTS if pretrained else {}
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
        from_scratch=from_scratch,
        epochs=defaults.get("epochs") if args.steps is None else None,
        warmup_fraction=defaults.get("warmup_fraction") if args.warmup_steps is None else None,
        next_sentence_prediction=getattr(args, "next_sentence_prediction", False),
        target_length=args.target_length,
    )
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="Pretrain a zoo model (masked LM, causal LM, seq2seq, span corruption, "
        "denoising); resumes when rerun.",
        description="Pretrain a zoo model from scratch (pretrained weights of a preset are not "
        "used; `kerasllm finetune` starts from them) on a built-in corpus or your own text. "
        "Checkpoints, TensorBoard logs and the learned tokenizer are written to --model-dir; "
        "running the same command again resumes from the newest checkpoint.",
        epilog=EPILOG,
    )
    add_common_arguments(
        parser,
        ("causal_lm", "masked_lm", "seq2seq", "span_corruption", "denoising"),
        default_lr=1e-3,
    )
    parser.add_argument(
        "--next-sentence-prediction",
        action="store_true",
        help="with --objective masked_lm: BERT's joint pretraining, masked LM plus "
        "next-sentence prediction on pairs of segments (each text/line is a document split "
        "into sentences, cut into runs of sentences filling --sequence-length; half the pairs "
        "take as second segment sentences of another document); the model gets "
        "a next-sentence head on its pooled output and reports nsp_accuracy (default: masked "
        "LM alone).",
    )
    parser.set_defaults(func=_run)


def _run(args) -> int:
    resolve_objective(args)
    return run_from_args(args, config_from_args(args), from_scratch=True)
