"""`kerasllm export`: a model bundle or preset to a TF Serving SavedModel."""

from __future__ import annotations

DESCRIPTION = """\
Export a model for TF Serving. Writes OUT/VERSION/ (the next free version: 1, 2, ...; an
existing version is never overwritten), a SavedModel whose signatures take raw strings and
return text, labels or embeddings, with tokenization and decoding inside the graph, plus a
warm-up file (assets.extra/tf_serving_warmup_requests).

Signatures by model:
  seq2seq (translation)  serving_default: text -> translation (greedy)
                         translate_max_length: text, max_length -> translation
                         translate_beam: text -> translation, score (--beams wide)
                         translate_token_ids: token_ids, padding_mask -> token_ids, lengths
  causal LM              serving_default: prompt -> completion (greedy)
                         generate_sampled: prompt, max_new_tokens, temperature, top_k, top_p,
                           seed -> completion
                         generate_token_ids: token_ids, padding_mask, max_new_tokens ->
                           token_ids, lengths
  classifier             serving_default: text -> probabilities, class_id, label
                         embed: text -> embedding; classify_token_ids
  tagger (token classif.) serving_default: text -> words, labels, class_ids, probabilities
                         classify_token_ids: one label per token
  encoder / masked LM    serving_default: text -> embedding; embed_token_ids
  question answerer      serving_default: question, context -> answer, score, start, end
                           (the answer read from the context, over windows of long ones)
"""

EPILOG = """\
examples:
  kerasllm export --model saved_models/translate_en_fr --out models/translate_en_fr
  kerasllm export --model saved_models/translate_en_fr --out models/translate_en_fr \\
      --max-length 64 --beams 4
  docker run -p 8501:8501 -v "$PWD/models/translate_en_fr:/models/translate_en_fr" \\
      -e MODEL_NAME=translate_en_fr tensorflow/serving

See docs/serving.md for REST and gRPC requests.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a model bundle or preset as a TF Serving SavedModel (text in, text out).",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL_DIR_OR_PRESET",
        help="A model bundle folder (e.g. saved_models/translate_en_fr) or a zoo preset name "
        "that ships a tokenizer (see `kerasllm zoo list`).",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="BASE/NAME",
        help="TF Serving model base path; the export goes to BASE/NAME/<next version>/. "
        "NAME is the model name clients use.",
    )
    parser.add_argument(
        "--task",
        default=None,
        help="Task of a preset (seq2seq_lm, causal_lm, classifier, token_classifier, masked_lm); "
        "ignored for a bundle, which knows its own (default: the preset's own model).",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        metavar="N",
        help="Default most generated tokens per input (seq2seq, causal LM). Default: the "
        "bundle's target length - 1 (the start token takes a slot), or what the model's "
        "positions allow.",
    )
    parser.add_argument(
        "--beams",
        type=int,
        default=4,
        metavar="N",
        help="Beam width of the translate_beam signature.",
    )
    parser.set_defaults(func=_export)


#: Seconds before the export's progress shows: an export that fails at once (a wrong --model)
#: prints its error alone.
PROGRESS_DELAY = 1.0


def _export(args) -> int:
    from kerasllm.export import exporter
    from kerasllm.utils.progress import Progress

    # Tracing and saving the signatures is one long call: the heartbeat keeps the elapsed
    # time moving on standard error meanwhile.
    stages = len(exporter.EXPORT_STAGES)
    with Progress(
        stages, label="export step", delay=PROGRESS_DELAY, heartbeat=True, eta=False
    ) as progress:
        path = exporter.export(
            args.model,
            args.out,
            task=args.task,
            max_length=args.max_length,
            beams=args.beams,
            progress=progress,
        )
        progress.update(stages, status="done")
    print(f"Exported version {path.name} to {path}")
    return 0
