"""`no_repeat_ngram_size`: no row of greedy, sampled or beam output repeats an n-gram."""

import numpy as np
import pytest
import tensorflow as tf
from generation_helpers import START, prompts_of_lengths

from kerasllm.generation import BeamSampler, GreedySampler, TopKSampler, generate
from kerasllm.generation.decoding import ban_repeated_ngrams


def repeated_ngrams(ids, n):
    seen, repeats = set(), 0
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        repeats += gram in seen
        seen.add(gram)
    return repeats


def test_ban_matches_a_python_reference_on_random_buffers():
    rng = np.random.default_rng(0)
    vocabulary = 6
    for size in (1, 2, 3):
        tokens = rng.integers(0, vocabulary, size=(16, 12)).astype("int32")
        for t in range(12):
            out = ban_repeated_ngrams(tf.zeros((16, vocabulary)), tokens, tf.constant(t), size)
            banned = out.numpy() < -1e8
            for r in range(16):
                sequence = tokens[r, :t].tolist()
                context = tuple(sequence[len(sequence) - size + 1 :]) if size > 1 else ()
                expected = set()
                for i in range(len(sequence) - size + 1):
                    if tuple(sequence[i : i + size - 1]) == context:
                        expected.add(sequence[i + size - 1])
                assert set(np.flatnonzero(banned[r]).tolist()) == expected, (size, t, r)


def test_unbanned_logits_are_untouched():
    logits = tf.constant([[0.5, -2.0, 3.0, 1.0]])
    out = ban_repeated_ngrams(logits, tf.constant([[1, 2, 1, 0]]), tf.constant(3), size=2)
    np.testing.assert_array_equal(out.numpy(), [[0.5, -2.0, -1e9, 1.0]])


def sequences(output):
    """Every generated sequence: one per row, or every beam of every row (with scores)."""
    if isinstance(output, tuple):  # (beams, scores) of return_all_beams
        return [beam for row in output[0] for beam in row]
    return list(output)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: GreedySampler(no_repeat_ngram_size=n),
        lambda n: TopKSampler(k=3, no_repeat_ngram_size=n),
        lambda n: BeamSampler(3, return_all_beams=True, no_repeat_ngram_size=n),
    ],
    ids=["greedy", "top_k", "beam"],
)
def test_causal_outputs_never_repeat_an_ngram(causal_lm, make):
    prompts = prompts_of_lengths([3, 5, 4])
    options = {"max_new_tokens": 26, "seed": 3, "stop_token_ids": None}
    unconstrained = generate(causal_lm, prompts, sampler=make(0), **options)
    constrained = generate(causal_lm, prompts, sampler=make(2), **options)
    # The random tiny model loops: without the constraint its outputs repeat bigrams, so the
    # test would notice a constraint that does nothing.
    assert sum(repeated_ngrams(list(map(int, r)), 2) for r in sequences(unconstrained)) > 0
    for row in sequences(constrained):
        assert repeated_ngrams(list(map(int, row)), 2) == 0
        assert len(row) > 3  # it still generated


def test_seq2seq_targets_never_repeat_an_ngram(seq2seq_lm):
    sources = prompts_of_lengths([6, 4])
    options = {"max_new_tokens": 28, "start_id": START, "stop_token_ids": None}
    free = generate(seq2seq_lm, sources, sampler=GreedySampler(), **options)
    constrained = generate(
        seq2seq_lm, sources, sampler=GreedySampler(no_repeat_ngram_size=3), **options
    )
    assert sum(repeated_ngrams(list(map(int, r)), 3) for r in free) > 0
    for row in constrained:
        assert repeated_ngrams(list(map(int, row)), 3) == 0


def test_setting_is_part_of_config_repr_and_cache_key():
    plain, constrained = GreedySampler(), GreedySampler(no_repeat_ngram_size=2)
    assert plain.get_config() == {}
    assert constrained.get_config() == {"no_repeat_ngram_size": 2}
    assert plain.cache_key != constrained.cache_key
    assert GreedySampler(**constrained.get_config()).no_repeat_ngram_size == 2
    assert "no_repeat_ngram_size=3" in repr(BeamSampler(2, no_repeat_ngram_size=3))


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_invalid_sizes_raise_naming_the_argument(value):
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        GreedySampler(no_repeat_ngram_size=value)
