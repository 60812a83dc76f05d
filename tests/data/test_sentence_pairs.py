"""Next-sentence-prediction pairs (`sentence_pairs`, `split_sentences`) and the joint MLM + NSP
pipeline (`next_sentence_dataset`) on synthetic documents."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasllm.data as kd
import kerasllm.tokenizers as kt
from kerasllm.testing import synthetic_text_samples

NEWS = synthetic_text_samples()["news"]  # 15 made-up articles of 12 sentences each


def _documents():
    return [kd.split_sentences(text) for text in NEWS]


def test_split_sentences_keeps_abbreviations_and_initials():
    text = 'Dr. Jones said "It works." Then the U.S. team left at 5 p.m. on Monday. Why? 3 won.'
    assert kd.split_sentences(text) == [
        'Dr. Jones said "It works."',
        "Then the U.S. team left at 5 p.m. on Monday.",
        "Why?",
        "3 won.",
    ]
    assert kd.split_sentences("  ") == []
    assert kd.split_sentences("no end mark") == ["no end mark"]


def test_synthetic_articles_split_into_their_sentences():
    documents = _documents()
    # Every made-up sentence starts upper-case; those ending without a mark merge with the next.
    assert all(3 <= len(sentences) <= 12 for sentences in documents)
    assert " ".join(documents[0]) == NEWS[0]


def test_half_of_the_pairs_are_next_and_random_b_comes_from_another_document():
    documents = _documents()
    a, b, labels = kd.sentence_pairs(documents, seed=3)
    assert len(a) == len(b) == len(labels) == sum(len(d) - 1 for d in documents)
    assert abs(labels.count(1) - labels.count(0)) <= 1
    owner = {}
    for d, sentences in enumerate(documents):
        for s in sentences:
            owner.setdefault(s, set()).add(d)
    starts = [(d, i) for d, sentences in enumerate(documents) for i in range(len(sentences) - 1)]
    for (d, i), text_a, text_b, label in zip(starts, a, b, labels):
        assert text_a == documents[d][i]
        if label == 1:
            assert text_b == documents[d][i + 1]
        else:
            assert d not in owner[text_b], (text_a, text_b)
    # Labels are shuffled, not alternating or sorted.
    assert labels != sorted(labels) and labels != [1, 0] * (len(labels) // 2)


def test_pairs_are_deterministic_in_the_seed_and_take_raw_texts():
    first = kd.sentence_pairs(NEWS, seed=7)
    assert first == kd.sentence_pairs(NEWS, seed=7)
    assert first != kd.sentence_pairs(NEWS, seed=8)
    assert first == kd.sentence_pairs(_documents(), seed=7)


def test_random_sentences_cover_the_other_documents():
    # Two documents: every NotNext B of document 0 comes from document 1 and vice versa.
    docs = [[f"A{i}." for i in range(40)], [f"B{i}." for i in range(40)]]
    a, b, labels = kd.sentence_pairs(docs, seed=0)
    random_b = {y for x, y, label in zip(a, b, labels) if label == 0 and x.startswith("A")}
    assert random_b and all(y.startswith("B") for y in random_b)
    assert len(random_b) > 10  # drawn across the document, not one sentence


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([["Only one."], ["Another one."]], "at least two sentences"),
        ([["One.", "Two.", "Three."]], "at least two documents"),
        ([["One.", 2]], "documents\\[0\\]"),
    ],
)
def test_unusable_documents_are_refused(documents, message):
    with pytest.raises(ValueError, match=message):
        kd.sentence_pairs(documents)


@pytest.fixture(scope="module")
def tokenizer():
    return kt.train_wordpiece(NEWS, vocabulary_size=300)


def test_batches_frame_pairs_with_segment_ids_masks_and_labels(tokenizer):
    documents = _documents()
    _, _, labels = kd.sentence_pairs(documents, seed=1)
    ds, stats = kd.next_sentence_dataset(documents, tokenizer, 48, 8, seed=1, shuffle=False)
    batches = list(ds)
    seen = np.concatenate([y["next_sentence_label"].numpy() for _, y, _ in batches])
    assert seen.tolist() == labels  # unshuffled: the pairs' order
    x, y, w = batches[0]
    assert sorted(x) == ["mask_positions", "padding_mask", "segment_ids", "token_ids"]
    ids, seg, pad = (x[k].numpy() for k in ("token_ids", "segment_ids", "padding_mask"))
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    for row in range(ids.shape[0]):
        n = int(pad[row].sum())
        seps = np.flatnonzero(ids[row, :n] == sep)
        assert ids[row, 0] == cls and ids[row, n - 1] == sep and len(seps) == 2
        # Segment 0 on [cls] A [sep], 1 on B [sep], 0 on padding.
        assert (seg[row, : seps[0] + 1] == 0).all() and (seg[row, seps[0] + 1 : n] == 1).all()
        assert (seg[row, n:] == 0).all()
        # Masked positions are real, non-framing tokens; labels are the original ids there.
        positions = x["mask_positions"].numpy()[row][w.numpy()[row] > 0]
        assert len(positions) >= 1
        assert all(0 < p < n - 1 and p not in seps for p in positions)
    assert y["mask_ids"].shape == w.shape
    # Pairs longer than 48 tokens are cut (the longer side first) to fit the sequence length.
    assert x["token_ids"].shape[1] == 48
    assert stats.as_dict()["examples"] == len(labels) and stats.as_dict()["truncated"] > 0


def test_dataset_is_deterministic_in_the_seed(tokenizer):
    def first_batch(seed):
        ds, _ = kd.next_sentence_dataset(NEWS[:5], tokenizer, 32, 6, seed=seed)
        x, y, _ = next(iter(ds))
        return x["token_ids"].numpy(), y["next_sentence_label"].numpy(), x["mask_positions"]

    one, two = first_batch(4), first_batch(4)
    for a, b in zip(one, two):  # same shuffle, same pairs, same masks
        np.testing.assert_array_equal(a, b)


def test_a_sequence_length_without_room_for_two_segments_is_refused(tokenizer):
    with pytest.raises(ValueError):
        kd.next_sentence_dataset(NEWS, tokenizer, 3, 4)  # [cls] [sep] [sep] and no text


def _unmasked_rows(x, y, w):
    """The batch's token ids with the masked positions given back their original ids."""
    ids = x["token_ids"].numpy().copy()
    positions, originals = x["mask_positions"].numpy(), y["mask_ids"].numpy()
    for row, (pos, orig, weight) in enumerate(zip(positions, originals, w.numpy())):
        ids[row, pos[weight > 0]] = orig[weight > 0]
    return ids


def test_shuffled_batches_keep_each_label_with_its_own_pair(tokenizer):
    documents = _documents()
    flat = [(d, i, s) for d, sentences in enumerate(documents) for i, s in enumerate(sentences)]
    texts = tokenizer.detokenize(tokenizer.tokenize([s for _, _, s in flat])).numpy()
    place = {text: (d, i) for text, (d, i, _) in zip(texts, flat)}  # sentence -> its place
    # Long enough for every pair uncut; bucketing reorders the examples further.
    ds, _ = kd.next_sentence_dataset(documents, tokenizer, 512, 16, seed=3, bucketing=True)
    checked = 0
    for x, y, w in ds.take(4):
        ids, pad = _unmasked_rows(x, y, w), x["padding_mask"].numpy()
        for row, label in enumerate(y["next_sentence_label"].numpy()):
            n = int(pad[row].sum())
            first_sep = int(np.flatnonzero(ids[row, :n] == tokenizer.sep_id)[0])
            a, b = tokenizer.detokenize(
                tf.ragged.constant([ids[row, 1:first_sep], ids[row, first_sep + 1 : n - 1]])
            ).numpy()
            (doc_a, i_a), (doc_b, i_b) = place[a], place[b]
            if label == 1:  # IsNext
                assert (doc_b, i_b) == (doc_a, i_a + 1)
            else:
                assert doc_b != doc_a
            checked += 1
    assert checked == 64


def test_a_tiny_model_learns_next_sentence_prediction_on_separable_topics(tmp_path):
    """End to end through the pipeline, the NSP head and the joint objective: documents of
    8 topics with disjoint words make IsNext/NotNext separable (a NotNext B almost always
    comes from another topic). A label misaligned with its pair, a head that does not read
    the [CLS] state, or an NSP loss that does not reach the model leaves accuracy at 50%."""
    from kerasllm.models import Encoder, MaskedLM
    from kerasllm.testing import tiny_config
    from kerasllm.training import Trainer, TrainerConfig, objectives

    # The initialisation decides how long the NSP loss stays at ln 2: fixed, so the test does
    # not depend on what ran before it in the process.
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    topics = [[f"w{t}x{j}" for j in range(12)] for t in range(8)]
    documents = [
        [" ".join(rng.choice(topics[d % 8], 6)) + "." for _ in range(6)] for d in range(40)
    ]
    tok = kt.train_wordpiece([" ".join(doc) for doc in documents], vocabulary_size=200)
    train, _ = kd.next_sentence_dataset(documents, tok, 32, 16, seed=0, repeat=True)
    held_out, _ = kd.next_sentence_dataset(documents, tok, 32, 16, seed=1, shuffle=False)

    def build():
        config = tiny_config(
            vocabulary_size=tok.vocabulary_size, hidden_dim=32, intermediate_dim=64
        )
        return MaskedLM(Encoder(**config), next_sentence_prediction=True)

    objective = objectives.MaskedLM(next_sentence_prediction=True)
    config = TrainerConfig(str(tmp_path), steps=400, learning_rate=5e-3, warmup_steps=10, verbose=0)
    history = Trainer(build, objective, config).fit(train, eval_data=held_out)
    # 400 steps: the NSP loss stays near ln 2 for about 200 (the [CLS] state has to learn to
    # compare the segments' topics), then falls: 0.885 with this seed (0.745-0.885 over seeds
    # 0-3); broken wiring stays near 0.5.
    assert history["eval"]["nsp_accuracy"] >= 0.65
