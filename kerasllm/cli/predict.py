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
  tagger      {"text", "words": [{"word", "label", "score"}, ...]}   (label null for a word
              cut off by the sequence length)
Labels are the bundle's "label_names" (as `kerasllm finetune` saves them), else "0", "1", ...
For causal and seq2seq language models use `kerasllm generate`.
"""

EPILOG = """\
examples:
  kerasllm predict --model runs/sentiment/bundle --text "A gem of a film." --text "Dull."
  kerasllm predict --model runs/sentiment/bundle --input reviews.txt --output labels.jsonl
  cut -f1 reviews.tsv | kerasllm predict --model runs/ner/bundle
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
    parser.set_defaults(func=_predict)


def _predict(args) -> int:
    batch_size = _inference.check_batch_size(args)
    texts = _inference.read_texts(args)
    loaded = _inference.load_model(args.model, "predict")
    run = predictor(loaded, batch_size, args.model)
    with _inference.output_stream(args.output) as out:
        _inference.in_batches(
            texts, batch_size, run, lambda record: _inference.write_json_line(out, record)
        )
    return 0


def predictor(loaded: _inference.Loaded, batch_size: int, name: str):
    """`run(texts) -> [record, ...]` for the loaded model (see the command's description).

    Raises:
        ValueError: the model is neither a classifier nor a tagger (naming the command that
            serves it).
    """
    import numpy as np

    from kerasllm import models

    model = loaded.model
    if isinstance(model, (models.CausalLM, models.Seq2SeqLM)):
        raise ValueError(
            f"--model {name!r} is a {type(model).__name__}, a text generator: use "
            "`kerasllm generate` for it."
        )
    if not isinstance(model, (models.SequenceClassifier, models.TokenClassifier)):
        raise ValueError(
            f"--model {name!r} is a {type(model).__name__}; `kerasllm predict` runs a "
            "SequenceClassifier or a TokenClassifier."
        )
    names = _inference.label_names(loaded)

    def classify(texts: list[str]) -> list[dict]:
        logits = np.asarray(model.predict(texts, batch_size=batch_size, verbose=0), np.float64)
        probabilities = _softmax(logits)
        records = []
        for text, row in zip(texts, probabilities):
            class_id = int(np.argmax(row))
            records.append(
                {
                    "text": text,
                    "label": names[class_id],
                    "class_id": class_id,
                    "probabilities": {n: float(p) for n, p in zip(names, row)},
                }
            )
        return records

    def tag(texts: list[str]) -> list[dict]:
        # Per-word logits (B, W, C), NaN for padding and for words the sequence length cut off.
        logits = np.asarray(model.predict(texts, batch_size=batch_size, verbose=0), np.float64)
        words = model.preprocessor.words(texts).to_list()
        records = []
        for text, row_words, row in zip(texts, words, logits):
            tagged = []
            for word, word_logits in zip(row_words, row):
                word = word.decode("utf-8") if isinstance(word, bytes) else word
                if np.isnan(word_logits).any():
                    tagged.append({"word": word, "label": None, "score": None})
                    continue
                probabilities = _softmax(word_logits)
                class_id = int(np.argmax(probabilities))
                score = float(probabilities[class_id])
                tagged.append({"word": word, "label": names[class_id], "score": score})
            records.append({"text": text, "words": tagged})
        return records

    return classify if isinstance(model, models.SequenceClassifier) else tag


def _softmax(logits):
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
