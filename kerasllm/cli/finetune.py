"""`kerasllm finetune`: fine-tune a zoo model for classification, tagging or seq2seq."""

from __future__ import annotations

from kerasllm.cli.pretrain import (
    add_common_arguments,
    config_from_args,
    resolve_objective,
    run_from_args,
)

EPILOG = """\
examples:
  # fine-tune the pretrained MiniLM-L6 (its weights and WordPiece tokenizer) on Rotten
  # Tomatoes: three epochs at learning rate 1e-4 by default; reports test accuracy at the end
  # (--objective classification is implied: it is all that rotten_tomatoes serves)
  kerasllm finetune --model minilm_l6 --data rotten_tomatoes --model-dir runs/rt_minilm

  # a preset without pretrained weights trains from scratch with a learned tokenizer
  kerasllm finetune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --model-dir runs/rt --steps 1500 --batch-size 32 --learning-rate 5e-4 --eval-every 500

  # the MiniLM-L6 architecture from random weights (a baseline)
  kerasllm finetune --model minilm_l6 --from-scratch --objective classification \\
      --data rotten_tomatoes --model-dir runs/rt_minilm_scratch

  # start from a pretraining run (same tokenizer), freeze the two lowest layers
  kerasllm finetune --model bert_tiny --objective classification --data rotten_tomatoes \\
      --model-dir runs/rt_ft --init-from runs/bert_news --tokenizer runs/bert_news/tokenizer \\
      --freeze-layers 2 --layerwise-lr-decay 0.8

  # extractive question answering on the news cloze set (windows of 128 tokens, stride 64)
  kerasllm finetune --model minilm_l6 --data news_cloze --model-dir runs/qa_minilm \\
      --sequence-length 128 --steps 500 --learning-rate 1e-4

  # LoRA adapters on the attention query/value projections, on your own CSV (text,label)
  kerasllm finetune --model bert_small --objective classification --data reviews.csv \\
      --model-dir runs/lora --lora-rank 8 --init-from runs/bert_pretrained

Rerunning the same command resumes from the newest checkpoint in --model-dir.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="Fine-tune a zoo model (classification, token classification, seq2seq).",
        description="Fine-tune a zoo model on a built-in corpus or your own files, optionally "
        "freezing layers or training LoRA adapters. A preset with pretrained weights (see "
        "`kerasllm zoo list`) starts from them with its own tokenizer; other presets, or "
        "--from-scratch, start from random weights; --init-from starts from a pretraining "
        "checkpoint. The first output line says which. The best checkpoint by --best-metric is "
        "kept in MODEL_DIR/best.",
        epilog=EPILOG,
    )
    add_common_arguments(
        parser,
        ("classification", "token_classification", "seq2seq", "span_extraction"),
        default_lr=5e-4,
    )
    tune = parser.add_argument_group("fine-tuning")
    tune.add_argument(
        "--from-scratch",
        action="store_true",
        help="random initial weights and a learned (or --tokenizer) tokenizer even when the "
        "preset ships pretrained weights; the from-scratch defaults apply.",
    )
    tune.add_argument(
        "--init-from",
        help="start from this kerasllm training checkpoint (directory or prefix) or .weights.h5; "
        "weights are matched by path, so a pretrained backbone loads under a new head "
        "(default: the preset's pretrained weights, if any).",
    )
    tune.add_argument("--freeze-backbone", action="store_true", help="train only the head.")
    tune.add_argument(
        "--freeze-layers", type=int, default=0, help="freeze embeddings and the lowest N blocks."
    )
    tune.add_argument(
        "--layerwise-lr-decay",
        type=float,
        help="learning-rate factor per block below the top (default: one rate for all).",
    )
    tune.add_argument(
        "--lora-rank",
        type=int,
        help="LoRA adapters of this rank on query/value (default: no adapters; all weights train).",
    )
    tune.add_argument("--lora-alpha", type=float, help="LoRA scale numerator (default: rank).")
    tune.add_argument(
        "--best-metric",
        default="auto",
        help="evaluation metric selecting MODEL_DIR/best (default: accuracy for classifiers, "
        "loss for seq2seq; 'none' disables).",
    )
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from kerasllm.training.recipe import resolve_start

    # Refuses contradictory flags before anything is loaded, and picks the defaults.
    start = resolve_start(
        args.model, args.from_scratch, args.init_from, args.tokenizer, args.vocabulary_size
    )
    resolve_objective(args)
    best = args.best_metric
    if best == "auto":
        best = {"seq2seq": "loss", "span_extraction": "span_accuracy"}.get(
            args.objective, "accuracy"
        )
    config = config_from_args(
        args,
        pretrained=start.pretrained,
        init_checkpoint=args.init_from,
        freeze_backbone=args.freeze_backbone,
        freeze_layers=args.freeze_layers,
        layerwise_lr_decay=args.layerwise_lr_decay,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        best_metric=None if best == "none" else best,
    )
    return run_from_args(args, config, pretrained=start.pretrained, from_scratch=args.from_scratch)
