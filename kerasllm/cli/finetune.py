"""`kerasllm finetune`: fine-tune a zoo model for classification, tagging or seq2seq."""

from __future__ import annotations

import argparse

from kerasllm.cli.pretrain import add_common_arguments, config_from_args, run_from_args

EPILOG = """\
examples:
  # sentiment classifier on Rotten Tomatoes, from scratch; reports test accuracy at the end
  kerasllm finetune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --model-dir runs/rt --steps 1500 --batch-size 32 --learning-rate 5e-4 --eval-every 500

  # start from a pretraining run (same tokenizer), freeze the two lowest layers
  kerasllm finetune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --model-dir runs/rt_ft --init-from runs/bert_news --tokenizer runs/bert_news/tokenizer \\
      --freeze-layers 2 --layerwise-lr-decay 0.8

  # LoRA adapters on the attention query/value projections, on your own CSV (text,label)
  kerasllm finetune --model bert_small --objective classification --data reviews.csv \\
      --model-dir runs/lora --lora-rank 8 --init-from runs/bert_pretrained

Rerunning the same command resumes from the newest checkpoint in --model-dir.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="Fine-tune a zoo model (classification, token classification, seq2seq).",
        description="Fine-tune a zoo model on a built-in corpus or your own files, from scratch "
        "or from a pretraining checkpoint, optionally freezing layers or training LoRA adapters. "
        "The best checkpoint by --best-metric is kept in MODEL_DIR/best.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(
        parser, ("classification", "token_classification", "seq2seq"), default_lr=5e-4
    )
    tune = parser.add_argument_group("fine-tuning")
    tune.add_argument(
        "--init-from",
        help="start from this kerasllm training checkpoint (directory or prefix) or .weights.h5; "
        "weights are matched by path, so a pretrained backbone loads under a new head.",
    )
    tune.add_argument("--freeze-backbone", action="store_true", help="train only the head.")
    tune.add_argument(
        "--freeze-layers", type=int, default=0, help="freeze embeddings and the lowest N blocks."
    )
    tune.add_argument(
        "--layerwise-lr-decay", type=float, help="learning-rate factor per block below the top."
    )
    tune.add_argument("--lora-rank", type=int, help="LoRA adapters of this rank on query/value.")
    tune.add_argument("--lora-alpha", type=float, help="LoRA scale numerator (default: rank).")
    tune.add_argument(
        "--best-metric",
        default="auto",
        help="evaluation metric selecting MODEL_DIR/best (default: accuracy for classifiers, "
        "loss for seq2seq; 'none' disables).",
    )
    parser.set_defaults(func=_run)


def _run(args) -> int:
    best = args.best_metric
    if best == "auto":
        best = "loss" if args.objective == "seq2seq" else "accuracy"
    config = config_from_args(
        args,
        init_checkpoint=args.init_from,
        freeze_backbone=args.freeze_backbone,
        freeze_layers=args.freeze_layers,
        layerwise_lr_decay=args.layerwise_lr_decay,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        best_metric=None if best == "none" else best,
    )
    return run_from_args(args, config)
