"""Entity-level NER scores (`kerasllm.metrics.entities` and the token-classification
objective's summed counts) equal `seqeval`'s on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from kerasllm import metrics
from kerasllm.metrics import entities

# Each case: (true tags, predicted tags) for one or more sentences; chosen where a naive
# decoder goes wrong.
TRICKY = {
    # An I- without its B- opens an entity (conlleval / seqeval default mode).
    "orphan_inside": ([["O", "B-PER", "I-PER", "O"]], [["O", "I-PER", "I-PER", "O"]]),
    # A type change inside a run of I- tags splits it in two entities.
    "type_change": ([["B-PER", "I-PER", "B-LOC"]], [["B-PER", "I-PER", "I-LOC"]]),
    # Entities that end at the last word, and one sentence's entity must not run into the next.
    "sequence_end": (
        [["O", "B-LOC", "I-LOC"], ["I-LOC", "O"]],
        [["O", "B-LOC", "I-LOC"], ["B-LOC", "O"]],
    ),
    # Boundaries wrong by one word count as both a false positive and a false negative.
    "boundary": ([["B-ORG", "I-ORG", "I-ORG", "O"]], [["B-ORG", "I-ORG", "O", "O"]]),
    # B- directly after an entity of the same type starts another one.
    "adjacent_same_type": ([["B-PER", "B-PER", "I-PER"]], [["B-PER", "I-PER", "I-PER"]]),
    "no_prediction": ([["B-PER", "O"]], [["O", "O"]]),
    "no_truth": ([["O", "O"]], [["B-PER", "O"]]),
}


def _seqeval(true, pred) -> dict:
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    return {
        "precision": precision_score(true, pred, zero_division=0),
        "recall": recall_score(true, pred, zero_division=0),
        "f1": f1_score(true, pred, zero_division=0),
        "per_type": {
            kind: {k: report[kind][k] for k in ("precision", "recall", "f1-score", "support")}
            for kind in report
            if not kind.endswith(" avg")
        },
    }


def _same_as_seqeval(result: dict, true, pred) -> None:
    want = _seqeval(true, pred)
    for key in ("precision", "recall", "f1"):
        assert result[key] == pytest.approx(want[key], abs=1e-12), key
    assert set(result["per_type"]) == set(want["per_type"])
    for kind, row in want["per_type"].items():
        got = result["per_type"][kind]
        assert got["precision"] == pytest.approx(row["precision"], abs=1e-12)
        assert got["recall"] == pytest.approx(row["recall"], abs=1e-12)
        assert got["f1"] == pytest.approx(row["f1-score"], abs=1e-12)
        assert got["support"] == row["support"]


def _random_sentences(rng, count: int, types=("PER", "LOC", "ORG")) -> list[list[str]]:
    tags = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    weights = [0.5] + [0.5 / (len(tags) - 1)] * (len(tags) - 1)
    return [list(rng.choice(tags, size=int(rng.integers(0, 12)), p=weights)) for _ in range(count)]


def _perturb(rng, sentences) -> list[list[str]]:
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    return [[tag if rng.random() < 0.7 else str(rng.choice(tags)) for tag in s] for s in sentences]


@pytest.mark.parametrize("case", sorted(TRICKY))
def test_entity_report_equals_seqeval_on_tricky_cases(case):
    true, pred = TRICKY[case]
    _same_as_seqeval(metrics.entity_report(true, pred), true, pred)
    # The counts path (what the trainer sums over batches) gives the same figures.
    _same_as_seqeval(metrics.scores_from_counts(metrics.entity_counts(true, pred)), true, pred)


def test_entity_report_and_counts_equal_seqeval_on_random_predictions():
    rng = np.random.default_rng(0)
    true = _random_sentences(rng, 300)
    pred = _perturb(rng, true)
    _same_as_seqeval(metrics.entity_report(true, pred), true, pred)
    _same_as_seqeval(metrics.scores_from_counts(metrics.entity_counts(true, pred)), true, pred)
    # Counts of two halves add up to the whole (what makes per-batch sums exact).
    half = len(true) // 2
    a = metrics.entity_counts(true[:half], pred[:half])
    b = metrics.entity_counts(true[half:], pred[half:])
    whole = metrics.entity_counts(true, pred)
    for kind in whole:
        for key in ("correct", "predicted", "true"):
            assert a.get(kind, {}).get(key, 0) + b.get(kind, {}).get(key, 0) == whole[kind][key]


def test_a_token_level_or_non_repairing_score_would_fail():
    """The figures the tests hold equal are not what a token-level F1, or a decoder that drops
    orphan I- tags, gives on the same predictions."""
    true, pred = TRICKY["boundary"]
    flat_true = [t for s in true for t in s]
    flat_pred = [t for s in pred for t in s]
    # Token-level F1 over the non-O tags: 2 of 3 ORG words right.
    correct = sum(t == p != "O" for t, p in zip(flat_true, flat_pred))
    token_f1 = 2 * correct / (sum(t != "O" for t in flat_true) + sum(p != "O" for p in flat_pred))
    assert token_f1 == pytest.approx(0.8)
    assert metrics.entity_report(true, pred)["f1"] == 0.0

    true, pred = TRICKY["orphan_inside"]
    strict_spans = [s for s in metrics.entity_spans(pred[0]) if pred[0][s[1]].startswith("B-")]
    assert strict_spans == []  # a decoder needing B- would find nothing
    assert metrics.entity_report(true, pred)["f1"] == 1.0


def test_entity_spans_and_repair_bio():
    tags = ["I-PER", "I-PER", "B-LOC", "I-ORG", "O", "B-geo-loc", "I-geo-loc"]
    assert metrics.entity_spans(tags) == [
        ("PER", 0, 2),
        ("LOC", 2, 3),
        ("ORG", 3, 4),
        ("geo-loc", 5, 7),
    ]
    assert metrics.repair_bio(tags) == [
        "B-PER",
        "I-PER",
        "B-LOC",
        "B-ORG",
        "O",
        "B-geo-loc",
        "I-geo-loc",
    ]
    with pytest.raises(ValueError, match="BIO tag"):
        metrics.entity_spans(["O", "PER"])
    with pytest.raises(ValueError, match="Sentence 0"):
        metrics.entity_report([["O"]], [["O", "O"]])
    with pytest.raises(ValueError, match="sentences"):
        metrics.entity_report([["O"]], [])


def test_word_tags_reads_per_word_logits_and_class_ids():
    names = ["O", "B-PER", "I-PER"]
    logits = np.full((2, 4, 3), np.nan)
    logits[0, :3] = [[0, 5, 0], [0, 0, 5], [5, 0, 0]]
    logits[1, :1] = [[0, 0, 5]]
    # The second text has two words but only the first was classified (cut off): "O".
    assert metrics.word_tags(logits, names, [3, 2]) == [["B-PER", "I-PER", "O"], ["I-PER", "O"]]
    assert metrics.word_tags(np.array([[1, 2, -1]]), names, [3]) == [["B-PER", "I-PER", "O"]]
    with pytest.raises(ValueError, match="classes"):
        metrics.word_tags(logits, names[:2], [3, 2])
    with pytest.raises(ValueError, match="class id 7"):
        metrics.word_tags(np.array([[7]]), names, [1])
    assert metrics.word_tags(np.zeros((0, 4, 3)), names, []) == []


def _batch_from_words(sentences, names, rng):
    """Word tag lists laid out as token-classification batches: ids on each word's first
    sub-word (weight 1), random ids with weight 0 on other sub-words, framing and padding."""
    index = {name: i for i, name in enumerate(names)}
    rows, weights = [], []
    for words in sentences:
        ids, w = [int(rng.integers(len(names)))], [0.0]  # [cls]
        for tag in words:
            ids.append(index[tag])
            w.append(1.0)
            for _ in range(int(rng.integers(0, 3))):  # later sub-words: any label, weight 0
                ids.append(int(rng.integers(len(names))))
                w.append(0.0)
        rows.append(ids)
        weights.append(w)
    width = max(len(r) for r in rows) + 2
    y = np.zeros((len(rows), width), np.int32)
    sample_weight = np.zeros((len(rows), width), np.float32)
    for i, (r, w) in enumerate(zip(rows, weights)):
        y[i, : len(r)] = r
        sample_weight[i, : len(w)] = w
    return y, sample_weight


def test_token_classification_objective_sums_entity_counts_exactly():
    from kerasllm.training.objectives import TokenClassification

    rng = np.random.default_rng(1)
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    true = _random_sentences(rng, 64)
    pred = _perturb(rng, true)
    objective = TokenClassification(label_names=names)
    seed = np.random.default_rng(2)
    totals: dict = {}
    for start in range(0, len(true), 16):  # four batches, summed as the trainer sums them
        y, weight = _batch_from_words(true[start : start + 16], names, seed)
        # The predicted tags on the same words, noise on the positions of weight 0.
        predicted_ids = np.where(weight > 0, 0, seed.integers(len(names), size=y.shape))
        for i, words in enumerate(pred[start : start + 16]):
            predicted_ids[i, np.flatnonzero(weight[i] > 0)] = [names.index(t) for t in words]
        logits = np.eye(len(names), dtype=np.float32)[predicted_ids] * 5.0
        sums = objective.metric_sums(y, logits, weight)
        for key, value in sums.items():
            totals[key] = totals.get(key, 0) + np.asarray(value)
    result = objective.results(totals)
    want = _seqeval(true, pred)
    assert result["entity_precision"] == pytest.approx(want["precision"], abs=1e-9)
    assert result["entity_recall"] == pytest.approx(want["recall"], abs=1e-9)
    assert result["entity_f1"] == pytest.approx(want["f1"], abs=1e-9)
    # Per type too (the counts' order is objective.entity_types).
    counts = metrics.entity_counts(true, pred)
    for i, kind in enumerate(objective.entity_types):
        assert totals["entity_correct"][i] == counts[kind]["correct"]
        assert totals["entity_predicted"][i] == counts[kind]["predicted"]
        assert totals["entity_true"][i] == counts[kind]["true"]
    # The token-level macro F1 the objective also reports is a different number.
    assert result["f1"] != pytest.approx(result["entity_f1"], abs=1e-3)


@pytest.mark.parametrize("case", sorted(TRICKY))
def test_objective_entity_f1_on_tricky_cases(case):
    from kerasllm.training.objectives import TokenClassification

    true, pred = TRICKY[case]
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    objective = TokenClassification(label_names=names)
    width = max(len(s) for s in true)
    y = np.zeros((len(true), width), np.int32)
    p = np.zeros_like(y)
    weight = np.zeros(y.shape, np.float32)
    for i, (t, q) in enumerate(zip(true, pred)):
        y[i, : len(t)] = [names.index(x) for x in t]
        p[i, : len(q)] = [names.index(x) for x in q]
        weight[i, : len(t)] = 1.0
    sums = objective.metric_sums(y, np.eye(len(names), dtype=np.float32)[p], weight)
    result = objective.results({k: np.asarray(v) for k, v in sums.items()})
    assert result["entity_f1"] == pytest.approx(_seqeval(true, pred)["f1"], abs=1e-12)


def test_objective_without_bio_names_reports_no_entity_scores():
    from kerasllm.training.objectives import TokenClassification

    objective = TokenClassification(label_names=["NOUN", "VERB"])
    assert objective.label_names is None
    y = np.zeros((1, 3), np.int32)
    sums = objective.metric_sums(y, np.zeros((1, 3, 2), np.float32), np.ones((1, 3)))
    assert "entity_f1" not in objective.results({k: np.asarray(v) for k, v in sums.items()})
    assert entities.split_tag("B-geo-loc") == ("B", "geo-loc")


# ------------------------------------------------------------------------------------ CLI
CLI_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CLI_TEXTS = ["John lives in Paris", "Mary saw a dog in the park", "the cat sat on Anna"]


@pytest.fixture(scope="module")
def tagger_bundle(tmp_path_factory):
    import keras

    import kerasllm.tokenizers as kt
    from kerasllm import bundle
    from kerasllm.models import Encoder, TokenClassifier

    tokenizer = kt.train_wordpiece(CLI_TEXTS * 10, vocabulary_size=60)
    keras.utils.set_random_seed(5)
    encoder = Encoder(
        vocabulary_size=tokenizer.vocabulary_size,
        pooler=False,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
    )
    model = TokenClassifier(encoder, num_classes=len(CLI_TAGS), dropout=0.0)
    # A larger head, so that a random tiny model predicts varied tags (entities to score).
    model.classifier.kernel.assign(model.classifier.kernel * 300.0)
    path = tmp_path_factory.mktemp("bundles") / "tagger"
    return bundle.Bundle(model, {"text": tokenizer}, {"label_names": CLI_TAGS}).save(path)


def _cli(capsys, *argv):
    from kerasllm.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def test_evaluate_a_tagger_prints_seqevals_entity_scores(tagger_bundle, tmp_path, capsys):
    import json

    from kerasllm import bundle

    words = [text.split() for text in CLI_TEXTS]
    tags = [["B-PER", "O", "O", "B-LOC"], ["B-PER", *["O"] * 6], ["O", "O", "O", "O", "I-PER"]]
    data = tmp_path / "tags.conll"
    data.write_text(
        "".join("".join(f"{w} {t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in zip(words, tags))
    )
    result = json.loads(_cli(capsys, "evaluate", "--model", tagger_bundle, "--data", data))
    model = bundle.load(tagger_bundle).model
    predicted = metrics.word_tags(
        model.predict(words, verbose=0), CLI_TAGS, [len(w) for w in words]
    )
    assert any(tag != "O" for row in predicted for tag in row)
    want = _seqeval(tags, predicted)
    assert result["entity_f1"] == pytest.approx(want["f1"], abs=1e-12)
    assert result["entity_precision"] == pytest.approx(want["precision"], abs=1e-12)
    assert result["entity_recall"] == pytest.approx(want["recall"], abs=1e-12)
    _same_as_seqeval(result["entities"], tags, predicted)
    assert result["entities"]["true_entities"] == 4


def test_predict_a_tagger_returns_entities_with_offsets_and_windows(tagger_bundle, capsys):
    import json

    text = "  ".join(CLI_TEXTS * 3)  # 51 words: longer than the 32 positions
    out = _cli(capsys, "predict", "--model", tagger_bundle, "--text", text, "--stride", 5)
    [record] = [json.loads(line) for line in out.splitlines()]
    labels = [w["label"] for w in record["words"]]
    assert len(labels) == len(text.split()) and None not in labels  # every word tagged
    spans = metrics.entity_spans(labels)
    assert spans and len(record["entities"]) == len(spans)
    for entity, (kind, first, end) in zip(record["entities"], spans):
        assert entity["type"] == kind
        assert entity["text"] == text[entity["start"] : entity["end"]]
        assert entity["text"].split() == text.split()[first:end]
        scores = [w["score"] for w in record["words"][first:end]]
        assert entity["score"] == pytest.approx(sum(scores) / len(scores))
    # Without --stride the words past the model's length get no label.
    out = _cli(capsys, "predict", "--model", tagger_bundle, "--text", text)
    assert None in [w["label"] for w in json.loads(out)["words"]]
