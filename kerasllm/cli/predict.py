"""`kerasllm predict`: a classifier's or a tagger's predictions on texts, as JSON Lines."""

from __future__ import annotations

from kerasllm.cli import _inference

DESCRIPTION = """\
Run a classifier or a tagger (token classifier) on texts: one input per line in, one JSON
object per line out, in the same order. Inputs come from --text (repeatable), --input FILE,
or standard input; results go to standard output (or --output), logs and progress to
standard error.

Output by model:
  classifier  {"text", "label", "class_id", "probabilities": {label: p, ...}}
              sentence pairs (--text A --text-pair B, or --jsonl objects with "text_a" and
              "text_b"): {"text_a", "text_b", "label", "class_id", "probabilities"}
  tagger      {"text", "words": [{"word", "label", "score"}, ...],   (label null for a word
              cut off by the sequence length)
               "entities": [{"text", "type", "start", "end", "score"}, ...]}
              entities: the words' BIO tags decoded as seqeval decodes them (an I- without
              its B- opens an entity); start/end: character offsets in the text; score: the
              mean of the entity's words' tag probabilities. Labels that are not BIO tags
              give no "entities".
  QA model    {"question", "answer", "score", "start", "end"} per (question, context) pair
              (--text QUESTION --text-pair CONTEXT, or --jsonl objects with "question" and
              "context"): the answer is read from the context (start/end: its character
              offsets), over windows of long contexts; score: p_start * p_end.
Texts longer than the model's sequence length are truncated unless --stride N is given:
then they are read in overlapping windows whose starts are N tokens apart; a classifier's
probabilities are the mean of its windows', a tagger's word takes the tag of the window where
it has the most context on both sides (see kerasllm.preprocessors.windows).
Labels are the bundle's "label_names" (as `kerasllm finetune` saves them), else "0", "1", ...
For causal and seq2seq language models use `kerasllm generate`.
"""

EPILOG = """\
examples:
  kerasllm predict --model runs/sentiment/bundle --text "A gem of a film." --text "Dull."
  kerasllm predict --model runs/sentiment/bundle --input reviews.txt --output labels.jsonl
  kerasllm predict --model runs/nli/bundle --text "A man sleeps." --text-pair "He is awake."
  kerasllm predict --model runs/nli/bundle --jsonl --input pairs.jsonl   # {"text_a", "text_b"}
  cut -f1 reviews.tsv | kerasllm predict --model runs/ner/bundle
  kerasllm predict --model runs/ner/bundle --input long_documents.txt --stride 64
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="Labels with probabilities (classifier) or per-word tags (tagger) for texts, as "
        "JSON Lines.",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _inference.add_model_argument(parser)
    _inference.add_input_arguments(parser)
    _inference.add_pair_argument(parser)
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        metavar="N",
        help="Read texts longer than the model in overlapping windows whose starts are N "
        "tokens apart (1 to the sequence length minus [cls] and [sep]); see the description. "
        "Default: truncate. Sentence pairs are always truncated.",
    )
    parser.set_defaults(func=_predict)


def _predict(args) -> int:
    batch_size = _inference.check_batch_size(args)
    texts = _inference.read_texts(args, pairs=True)
    loaded = _inference.load_model(args.model, "predict")
    run = predictor(loaded, batch_size, args.model, stride=args.stride)
    with _inference.output_stream(args.output) as out:
        _inference.in_batches(
            texts, batch_size, run, lambda record: _inference.write_json_line(out, record)
        )
    return 0


def predictor(loaded: _inference.Loaded, batch_size: int, name: str, stride: int | None = None):
    """`run(texts) -> [record, ...]` for the loaded model (see the command's description);
    `stride`: read long single texts in windows (`kerasllm.preprocessors.windows`).

    Raises:
        ValueError: the model is neither a classifier nor a tagger (naming the command that
            serves it), or `stride` is out of range (naming --stride).
    """
    import numpy as np

    from kerasllm import models

    model = loaded.model
    if isinstance(model, (models.CausalLM, models.Seq2SeqLM)):
        raise ValueError(
            f"--model {name!r} is a {type(model).__name__}, a text generator: use "
            "`kerasllm generate` for it."
        )
    if isinstance(model, models.QuestionAnswerer):
        return _answerer(model, batch_size, name)
    if not isinstance(model, (models.SequenceClassifier, models.TokenClassifier)):
        raise ValueError(
            f"--model {name!r} is a {type(model).__name__}; `kerasllm predict` runs a "
            "SequenceClassifier, a TokenClassifier or a QuestionAnswerer."
        )
    names = _inference.label_names(loaded)
    windowed = {}
    if stride is not None:
        from kerasllm.preprocessors.windows import check_stride, window_size

        try:
            check_stride(stride, window_size(model.preprocessor))
        except ValueError as error:
            raise ValueError(f"--stride: {error}") from None
        windowed = {"stride": stride}

    def classify(texts: list) -> list[dict]:
        # Single texts and sentence pairs (tuples) run as separate batches, results in order.
        probabilities = [None] * len(texts)
        for is_pair in (False, True):
            rows = [i for i, t in enumerate(texts) if isinstance(t, tuple) == is_pair]
            if not rows:
                continue
            inputs = [texts[i] for i in rows]
            if is_pair:
                inputs = ([a for a, _ in inputs], [b for _, b in inputs])
            extra = {} if is_pair else windowed
            logits = model.predict(inputs, batch_size=batch_size, verbose=0, **extra)
            for i, row in zip(rows, _softmax(np.asarray(logits, np.float64))):
                probabilities[i] = row
        records = []
        for text, row in zip(texts, probabilities):
            class_id = int(np.argmax(row))
            shown = {"text_a": text[0], "text_b": text[1]} if isinstance(text, tuple) else {}
            records.append(
                {
                    **(shown or {"text": text}),
                    "label": names[class_id],
                    "class_id": class_id,
                    "probabilities": {n: float(p) for n, p in zip(names, row)},
                }
            )
        return records

    def tag(texts: list[str]) -> list[dict]:
        if any(isinstance(text, tuple) for text in texts):
            raise ValueError(
                f"--model {name!r} is a tagger: it takes single texts, not sentence pairs "
                "(--text-pair, text_a/text_b)."
            )
        # Per-word logits (B, W, C), NaN for padding and for words the sequence length cut off.
        logits = model.predict(texts, batch_size=batch_size, verbose=0, **windowed)
        logits = np.asarray(logits, np.float64)
        words = model.preprocessor.words(texts).to_list()
        records = []
        for text, row_words, row in zip(texts, words, logits):
            tagged = []
            for index, word in enumerate(row_words):
                word = word.decode("utf-8") if isinstance(word, bytes) else word
                # Without --stride, predict has at most sequence_length - 2 word columns: the
                # words past them were cut off, and are listed with no label.
                word_logits = row[index] if index < len(row) else None
                if word_logits is None or np.isnan(word_logits).any():
                    tagged.append({"word": word, "label": None, "score": None})
                    continue
                probabilities = _softmax(word_logits)
                class_id = int(np.argmax(probabilities))
                score = float(probabilities[class_id])
                tagged.append({"word": word, "label": names[class_id], "score": score})
            record = {"text": text, "words": tagged}
            if bio:
                record["entities"] = _entities(text, tagged)
            records.append(record)
        return records

    bio = _is_bio(names)

    return classify if isinstance(model, models.SequenceClassifier) else tag


def _is_bio(names: list[str]) -> bool:
    from kerasllm.metrics.entities import split_tag

    try:
        for name in names:
            split_tag(name)
    except ValueError:
        return False
    return True


def _entities(text: str, tagged: list[dict]) -> list[dict]:
    """The entities of one tagged text (see the command's description): seqeval's decoding of
    the words' labels (a word without a label is "O"), with character offsets in `text`."""
    from kerasllm.metrics import entity_spans

    # Words were split at ASCII whitespace, so each is found in order in the text.
    offsets, cursor = [], 0
    for item in tagged:
        start = text.find(item["word"], cursor)
        if start < 0:  # not found verbatim (invalid UTF-8 replaced): no offsets
            offsets.append(None)
            continue
        cursor = start + len(item["word"])
        offsets.append((start, cursor))
    found = []
    for kind, first, end in entity_spans([item["label"] or "O" for item in tagged]):
        words = tagged[first:end]
        entity = {"text": " ".join(item["word"] for item in words), "type": kind}
        if offsets[first] is not None and offsets[end - 1] is not None:
            entity["text"] = text[offsets[first][0] : offsets[end - 1][1]]
            entity["start"], entity["end"] = offsets[first][0], offsets[end - 1][1]
        entity["score"] = sum(item["score"] for item in words) / len(words)
        found.append(entity)
    return found


def _answerer(model, batch_size: int, name: str):
    """`run(pairs)` for a `QuestionAnswerer`: each input a (question, context) pair."""

    def answer(pairs: list) -> list[dict]:
        if not all(isinstance(pair, tuple) for pair in pairs):
            raise ValueError(
                f"--model {name!r} answers questions: give (question, context) pairs, as "
                '--text QUESTION --text-pair CONTEXT or --jsonl objects with "question" and '
                '"context" (or "text_a" and "text_b").'
            )
        questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
        results = model.answer(questions, contexts, batch_size=batch_size)
        return [{"question": q, **result} for q, result in zip(questions, results)]

    return answer


def _softmax(logits):
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
