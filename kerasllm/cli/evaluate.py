"""`kerasllm evaluate`: a model's metrics on a built-in corpus split or a data file, as JSON."""

from __future__ import annotations

import json

from kerasllm.cli import _inference

DESCRIPTION = """\
Evaluate a model bundle (or preset) on a built-in corpus split or your own file and print its
metrics as one JSON object (standard output, or --output); logs and progress go to standard
error.

Metrics and data by model (files as `kerasllm finetune` / `pretrain` read them):
  classifier   loss, accuracy        rotten_tomatoes, or a .csv with text and label columns
  tagger       loss, accuracy,       wnut, or a CoNLL file (accuracy over words)
               entity_precision/recall/f1 and "entities" (per-type table): exact span and
               type, BIO decoded as seqeval does (when the labels are BIO tags)
  seq2seq LM   bleu, chrf (sacrebleu, greedy decoding), rouge1/rouge2/rougeL (rouge-score,
               stemmed F-measures)   bible, news_headlines, or a .tsv of source<TAB>target pairs
  causal LM    loss, perplexity      news, bible, or a .txt file / folder of .txt files
  QA model     exact_match, f1 (SQuAD's official normalization)   news_cloze, or a .jsonl
               file of SQuAD-style {"question", "context", "answers"} objects
Loss and accuracy are those of `model.evaluate` (the task's compile() defaults); BLEU and chrF
those of `kerasllm.metrics.score` on `model.generate`'s outputs. A file is evaluated whole;
a built-in corpus on its --split. Class names in the file are matched with the bundle's
"label_names" when it has them.
"""

EPILOG = """\
examples:
  kerasllm evaluate --model runs/sentiment/bundle --data rotten_tomatoes --split test
  kerasllm evaluate --model runs/sentiment/bundle --data my_reviews.csv
  kerasllm evaluate --model translate_en_fr --data pairs.tsv --max-examples 200
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="A model's metrics (loss/accuracy, BLEU/chrF, perplexity) on a corpus split or a "
        "data file, as JSON.",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _inference.add_model_argument(parser)
    _inference.add_evaluation_flags(parser)
    parser.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="Write the JSON here (replaced atomically). Default: standard output.",
    )
    parser.set_defaults(func=_evaluate)


def objective_of(model, name: str) -> str:
    """The `kerasllm.training.inputs` objective whose data `model` is evaluated on."""
    from kerasllm import models

    for cls, objective in (
        (models.SequenceClassifier, "classification"),
        (models.TokenClassifier, "token_classification"),
        (models.Seq2SeqLM, "seq2seq"),
        (models.CausalLM, "causal_lm"),
        (models.QuestionAnswerer, "span_extraction"),
    ):
        if isinstance(model, cls):
            return objective
    raise ValueError(
        f"--model {name!r} is a {type(model).__name__}; `kerasllm evaluate` runs a "
        "SequenceClassifier, TokenClassifier, Seq2SeqLM, CausalLM or QuestionAnswerer."
    )


def load_examples(objective: str, data: str, split: str, max_examples: int | None):
    """The examples to evaluate on and the file's class names (None but for classifiers and
    taggers): a built-in corpus's `split`, or the whole file `data`."""
    from kerasllm.training import inputs

    if data in inputs.BUILT_IN:
        if objective not in inputs.BUILT_IN[data]:
            raise ValueError(
                f"--data {data!r} has no {objective} data; it serves {list(inputs.BUILT_IN[data])}."
            )
        corpus = inputs.load_corpus(objective, data, eval_split=split)
    else:
        # `eval_data=data`: the evaluation split is the whole file, nothing held out.
        corpus = inputs.load_corpus(objective, data, eval_data=data)
    examples = corpus.eval
    if max_examples is not None:
        examples = _first(examples, max_examples)
    return examples, corpus.labels


def _first(examples, count: int):
    """The first `count` examples of a split (columns, nested for sentence pairs)."""
    if isinstance(examples, tuple):
        return tuple(_first(column, count) for column in examples)
    return examples[:count]


def _model_class_ids(file_names: list[str], model_names: list[str], data: str) -> list[int]:
    """Maps the file's class ids (indices into `file_names`) to the model's, by name."""
    position = {name: i for i, name in enumerate(model_names)}
    unknown = sorted(set(file_names) - set(position))
    if unknown:
        raise ValueError(
            f"--data {data!r} has labels {unknown} that the model does not know; its labels "
            f"are {model_names}."
        )
    return [position[name] for name in file_names]


def default_max_new_tokens(loaded: _inference.Loaded) -> int:
    """A seq2seq LM's longest output: its bundle's `target_length` - 1, else its positions'."""
    target_length = loaded.metadata.get("target_length")
    if isinstance(target_length, int) and not isinstance(target_length, bool) and target_length > 1:
        return target_length - 1
    return int(loaded.model.backbone.max_sequence_length) - 1


def evaluate(loaded: _inference.Loaded, args) -> dict:
    """The metrics of `loaded.model` on `args.data` (see the command's description)."""
    import math

    model = loaded.model
    objective = objective_of(model, args.model)
    examples, file_labels = load_examples(objective, args.data, args.split, args.max_examples)
    count = len(examples[1]) if isinstance(examples, tuple) else len(examples)  # the labels
    result: dict = {"examples": count}
    if count == 0:
        return result
    if objective == "seq2seq":
        from kerasllm import metrics

        sources = [source for source, _ in examples]
        references = [target for _, target in examples]
        hypotheses: list[str] = []

        max_new_tokens = args.max_new_tokens or default_max_new_tokens(loaded)

        def translate(batch: list[str]) -> list[str]:
            return model.generate(batch, max_new_tokens=max_new_tokens)

        _inference.in_batches(sources, args.batch_size, translate, hypotheses.append)
        # ROUGE next to BLEU/chrF: the same outputs serve translation and summarization.
        scores = {**metrics.score(hypotheses, references), **metrics.rouge(hypotheses, references)}
        return {**result, **scores}
    if objective == "span_extraction":
        from kerasllm import metrics

        questions, contexts, _, answers = examples
        predicted = model.answer(questions, contexts, batch_size=args.batch_size)
        return {**result, **metrics.squad([p["answer"] for p in predicted], answers)}
    model.compile()
    if objective == "causal_lm":
        logs = model.evaluate(
            list(examples), batch_size=args.batch_size, verbose=0, return_dict=True,
            callbacks=[_inference.keras_progress(count, args.batch_size)],
        )  # fmt: skip
        loss = float(logs["loss"])
        return {**result, "loss": loss, "perplexity": math.exp(min(loss, 700.0))}
    texts, ids = examples
    names = _inference.label_names(loaded)
    mapping = _model_class_ids(file_labels or [], names, args.data)
    if objective == "classification":
        labels = [mapping[i] for i in ids]
    else:
        # Token classification: one tag name per word; the file's tags are names.
        position = {name: i for i, name in enumerate(file_labels or [])}
        labels = [[mapping[position[tag]] for tag in tags] for tags in ids]
    logs = model.evaluate(
        texts, labels, batch_size=args.batch_size, verbose=0, return_dict=True,
        callbacks=[_inference.keras_progress(count, args.batch_size)],
    )  # fmt: skip
    result.update({name: float(value) for name, value in logs.items()})
    if objective == "token_classification":
        result.update(_entity_scores(model, texts, ids, names, args.batch_size))
    return result


def _entity_scores(model, words: list, tags: list, names: list[str], batch_size: int) -> dict:
    """Entity-level scores of a tagger (`kerasllm.metrics.entity_report`, seqeval's figures)
    on word lists `words` with true tag names `tags`; {} when the model's labels are not BIO
    tags. A word the model does not classify (cut by its sequence length) counts as "O"."""
    from kerasllm import metrics
    from kerasllm.metrics.entities import split_tag

    try:
        for name in [*names, *{tag for row in tags for tag in row}]:
            split_tag(name)
    except ValueError:
        return {}
    shown = _inference.keras_progress(len(words), batch_size)
    predictions = model.predict(list(words), batch_size=batch_size, verbose=0, callbacks=[shown])
    predicted = metrics.word_tags(predictions, names, [len(row) for row in words])
    report = metrics.entity_report([list(row) for row in tags], predicted)
    return {
        "entity_precision": report["precision"],
        "entity_recall": report["recall"],
        "entity_f1": report["f1"],
        "entities": report,
    }


def _evaluate(args) -> int:
    _inference.check_batch_size(args)
    if args.max_examples is not None and args.max_examples < 1:
        raise ValueError(f"--max-examples must be a positive integer; got {args.max_examples}.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be a positive integer; got {args.max_new_tokens}.")
    loaded = _inference.load_model(args.model, "evaluate")
    result = evaluate(loaded, args)
    with _inference.output_stream(args.output) as out:
        out.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0
