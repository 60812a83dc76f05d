"""Decoding correctness: cached loops against full recomputation, mixed prompt lengths, beam
search, stop tokens and seeds."""

import keras
import numpy as np
import pytest
from generation_helpers import (
    START,
    continuation_log_prob,
    greedy_without_cache,
    prompts_of_lengths,
    seq2seq_greedy_without_cache,
)

from kerasllm.generation import BeamSampler, TopPSampler, generate
from kerasllm.models import CausalLM, Decoder
from kerasllm.testing import tiny_config

NEW = 8
LENGTHS = [3, 7, 1, 6]  # one 8-token prompt bucket, one 16-slot cache bucket


@pytest.fixture(scope="module")
def rotary_gqa_lm():
    keras.utils.set_random_seed(3)
    return CausalLM(Decoder(**tiny_config("rotary_gqa_swiglu")))


@pytest.fixture(scope="module")
def trained_lm():
    """A tiny decoder trained briefly (uncertain but not random) on counting sequences."""
    keras.utils.set_random_seed(0)
    vocabulary = 20
    model = CausalLM(Decoder(**tiny_config(vocabulary_size=vocabulary)))
    rng = np.random.default_rng(0)
    start = rng.integers(2, vocabulary, size=(512, 1))
    step = rng.integers(1, 3, size=(512, 1))  # count by ones or by twos
    sequences = ((start - 2 + step * np.arange(13)) % (vocabulary - 2) + 2).astype("int32")
    inputs = sequences[:, :-1]
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        {"token_ids": inputs, "padding_mask": np.ones_like(inputs)},
        sequences[:, 1:],
        batch_size=32,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    return model, sequences[:8, :2]


@pytest.mark.parametrize("model_name", ["causal_lm", "rotary_gqa_lm"])
def test_cached_greedy_equals_recomputing_the_full_sequence(request, model_name):
    model = request.getfixturevalue(model_name)
    prompts = prompts_of_lengths(LENGTHS)
    out = generate(model, prompts, max_new_tokens=NEW, stop_token_ids=None)
    assert out.shape == (4, max(LENGTHS) + NEW)
    for row, prompt in zip(out, prompts):
        expected = greedy_without_cache(model, prompt, NEW)
        assert row[: len(expected)].tolist() == expected
        assert (row[len(expected) :] == 0).all()


def test_seq2seq_cached_greedy_equals_recomputing(seq2seq_lm):
    sources = prompts_of_lengths([5, 2, 8, 4], seed=3)
    out = generate(seq2seq_lm, sources, max_new_tokens=NEW, start_id=START, stop_token_ids=None)
    assert out.shape == (4, NEW)
    for row, source in zip(out, sources):
        assert row.tolist() == seq2seq_greedy_without_cache(seq2seq_lm, source, START, NEW)


# The beam settings match the ranking test below, so both share one compiled loop.
@pytest.mark.parametrize(
    "sampler", ["greedy", BeamSampler(num_beams=3, length_penalty=0.7)], ids=["greedy", "beam"]
)
def test_mixed_prompt_lengths_equal_each_prompt_alone(causal_lm, sampler):
    prompts = prompts_of_lengths(LENGTHS, seed=5)
    batch = generate(causal_lm, prompts, max_new_tokens=NEW, sampler=sampler, stop_token_ids=None)
    for row, prompt in zip(batch, prompts):
        alone = generate(
            causal_lm, [prompt], max_new_tokens=NEW, sampler=sampler, stop_token_ids=None
        )[0]
        np.testing.assert_array_equal(row[: alone.size], alone)
        assert (row[alone.size :] == 0).all()


def _stop_that_occurs(out, prompt_lengths, offset=2):
    """A token greedy produced in the first row, so stopping on it changes the output."""
    return int(out[0, prompt_lengths[0] + offset])


def test_stop_tokens_end_rows_and_pad_the_rest(causal_lm):
    prompts = prompts_of_lengths(LENGTHS, seed=7)
    free = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=None)
    stops = {_stop_that_occurs(free, LENGTHS), _stop_that_occurs(free, LENGTHS, offset=5)}
    out = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=sorted(stops))
    stopped = 0
    for row, free_row, n in zip(out, free, LENGTHS):
        generated = free_row[n : n + NEW].tolist()
        hits = [i for i, token in enumerate(generated) if token in stops]
        end = n + (hits[0] + 1 if hits else NEW)
        stopped += bool(hits)
        np.testing.assert_array_equal(row[:end], free_row[:end])
        assert (row[end:] == 0).all()
    assert stopped >= 1
    # Every row stopped before its budget: generation ended early and the output is narrower.
    if stopped == len(prompts):
        assert out.shape[1] < free.shape[1]


def test_one_beam_equals_greedy_with_stop_tokens(causal_lm, seq2seq_lm):
    prompts = prompts_of_lengths(LENGTHS, seed=11)
    free = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=None)
    stop = [_stop_that_occurs(free, LENGTHS)]
    greedy = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=stop)
    beam = generate(
        causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=stop, sampler=BeamSampler(1)
    )
    np.testing.assert_array_equal(beam, greedy)

    sources = prompts_of_lengths([5, 2, 8, 4], seed=3)
    free = generate(seq2seq_lm, sources, max_new_tokens=NEW, start_id=START, stop_token_ids=None)
    settings = dict(max_new_tokens=NEW, start_id=START, stop_token_ids=[int(free[0, 1])])
    greedy = generate(seq2seq_lm, sources, **settings)
    beam = generate(seq2seq_lm, sources, sampler=BeamSampler(1), **settings)
    np.testing.assert_array_equal(beam, greedy)
    assert greedy.shape[1] < NEW or (greedy == 0).any()  # the stop token did end a row


def test_beam_search_finds_at_least_greedy_log_probability(trained_lm):
    model, prompts = trained_lm
    greedy = generate(model, prompts, max_new_tokens=NEW, stop_token_ids=None)
    beam = generate(
        model,
        prompts,
        max_new_tokens=NEW,
        stop_token_ids=None,
        sampler=BeamSampler(num_beams=4, length_penalty=0.0),
    )
    greedy_scores = [continuation_log_prob(model, row.tolist(), 2) for row in greedy]
    beam_scores = [continuation_log_prob(model, row.tolist(), 2) for row in beam]
    assert all(b >= g - 1e-4 for b, g in zip(beam_scores, greedy_scores))
    assert sum(b > g + 1e-3 for b, g in zip(beam_scores, greedy_scores)) >= 1


def test_all_beams_are_ranked_by_length_normalized_log_probability(causal_lm):
    prompts = prompts_of_lengths(LENGTHS, seed=13)
    free = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=None)
    stop = [_stop_that_occurs(free, LENGTHS, offset=1)]
    sampler = BeamSampler(num_beams=3, length_penalty=0.7, return_all_beams=True)
    beams, scores = generate(
        causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=stop, sampler=sampler
    )
    assert beams.shape[:2] == (4, 3) and scores.shape == (4, 3)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    best = generate(
        causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=stop, sampler=BeamSampler(3, 0.7)
    )
    np.testing.assert_array_equal(best, beams[:, 0, : best.shape[1]])
    for row_beams, row_scores, n in zip(beams, scores, LENGTHS):
        assert len({tuple(b) for b in row_beams.tolist()}) == 3  # distinct hypotheses
        for sequence, score in zip(row_beams, row_scores):
            generated = sequence[n:].tolist()
            if stop[0] in generated:
                generated = generated[: generated.index(stop[0]) + 1]
            else:
                generated = generated[:NEW]
            log_prob = continuation_log_prob(causal_lm, sequence[:n].tolist() + generated, n)
            assert score == pytest.approx(log_prob / len(generated) ** 0.7, abs=1e-4)


def test_same_seed_gives_the_same_samples(causal_lm):
    prompts = prompts_of_lengths(LENGTHS, seed=17)
    # Top-p runs every op the other random samplers use (top-k, categorical, gather).
    settings = dict(max_new_tokens=NEW, sampler=TopPSampler(p=0.95, temperature=2.0))
    a = generate(causal_lm, prompts, seed=42, stop_token_ids=None, **settings)
    b = generate(causal_lm, prompts, seed=42, stop_token_ids=None, **settings)
    c = generate(causal_lm, prompts, seed=43, stop_token_ids=None, **settings)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for row, prompt in zip(a, prompts):  # prompts are kept, samples follow them
        assert row[: len(prompt)].tolist() == prompt


def test_decoding_steps_through_the_task_models_step_api(causal_lm, seq2seq_lm, monkeypatch):
    """The loops call `CausalLM.call_with_cache` / `Seq2SeqLM.call_decoder_with_cache` (the
    documented contract), not the backbone's methods: a subclass or wrapper of a task's step
    changes what is generated. (Before, decoding called `model.backbone.*` and the task
    methods were used only by tests.)"""
    import tensorflow as tf

    from kerasllm.generation import GreedySampler, decode_causal, decode_seq2seq

    calls = []

    def spy(model, method):
        original = getattr(model, method)

        def step(*args):
            calls.append(method)
            return original(*args)

        monkeypatch.setattr(model, method, step)

    prompts, lengths = tf.constant([[5, 6, 7], [8, 9, 0]]), tf.constant([3, 2])
    settings = dict(cache_length=6, max_new_tokens=3, sampler=GreedySampler())
    expected = decode_causal(causal_lm, prompts, lengths, **settings)["token_ids"]
    spy(causal_lm, "call_with_cache")
    got = decode_causal(causal_lm, prompts, lengths, **settings)["token_ids"]
    np.testing.assert_array_equal(got, expected)
    assert calls.count("call_with_cache") >= 2  # the prefill and the steps

    mask = tf.ones_like(prompts)
    expected = decode_seq2seq(seq2seq_lm, prompts, mask, start_id=START, **settings)
    spy(seq2seq_lm, "call_decoder_with_cache")
    got = decode_seq2seq(seq2seq_lm, prompts, mask, start_id=START, **settings)
    np.testing.assert_array_equal(got["token_ids"], expected["token_ids"])
    assert calls.count("call_decoder_with_cache") >= 2
