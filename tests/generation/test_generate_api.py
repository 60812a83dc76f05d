"""`generate` as users call it: input forms, strings through a tokenizer, compiled-loop reuse,
graph-mode decoding with symbolic shapes, and errors."""

import numpy as np
import pytest
import tensorflow as tf
from generation_helpers import END, START, WORDS, WordTokenizer, prompts_of_lengths

import kerasllm.tokenizers as kt
from kerasllm.generation import (
    BeamSampler,
    GreedySampler,
    RandomSampler,
    decode_causal,
    decode_seq2seq,
    generate,
    trace_count,
)
from kerasllm.models import CausalLM, Decoder, Encoder, EncoderDecoder, MaskedLM, Seq2SeqLM
from kerasllm.testing import tiny_config

NEW = 8
VOCABULARY = ["[PAD]", "[START]", "[END]", "[UNK]", *WORDS]


def _detokenize(rows):
    return [" ".join(VOCABULARY[i] for i in row if i not in (0, END)) for row in rows]


def test_string_prompts_through_the_models_tokenizer(causal_lm, with_tokenizer):
    model = with_tokenizer(causal_lm)
    prompts = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10", "w11 w12"]
    texts = model.generate(prompts, max_new_tokens=NEW)
    ids = generate(
        model, model.tokenizer.tokenize(prompts), max_new_tokens=NEW, stop_token_ids=[END]
    )
    assert texts == _detokenize(ids)  # "auto" stops at the tokenizer's end id
    assert all(text.startswith(prompt) for text, prompt in zip(texts, prompts))
    continuations = model.generate(prompts, max_new_tokens=NEW, strip_prompt=True)
    assert [f"{p} {c}".strip() for p, c in zip(prompts, continuations)] == texts
    assert model.generate("w1 w2 w3", max_new_tokens=NEW) == texts[0]


def test_seq2seq_string_sources_start_and_stop_from_the_tokenizer(seq2seq_lm, with_tokenizer):
    model = with_tokenizer(seq2seq_lm)
    sources = ["w1 w2", "w3 w4 w5", "w6", "w7 w8 w9 w10"]
    texts = model.generate(sources, max_new_tokens=NEW)
    ids = model.generate(model.tokenizer.tokenize(sources), max_new_tokens=NEW)
    explicit = generate(
        model,
        model.tokenizer.tokenize(sources),
        max_new_tokens=NEW,
        start_id=START,
        stop_token_ids=[END],
    )
    np.testing.assert_array_equal(ids, explicit)
    assert texts == _detokenize(ids)


def test_every_input_form_gives_the_same_tokens(causal_lm):
    prompts = prompts_of_lengths([3, 7, 1, 6], seed=21)
    expected = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=None)
    ragged = tf.ragged.constant(prompts, dtype=tf.int32)
    padded = ragged.to_tensor(default_value=55).numpy()  # garbage after each prompt
    mask = tf.sequence_mask(ragged.row_lengths(), dtype=tf.int32).numpy()
    for inputs in (ragged, {"token_ids": padded, "padding_mask": mask}):
        out = generate(causal_lm, inputs, max_new_tokens=NEW, stop_token_ids=None)
        np.testing.assert_array_equal(out, expected)
    single = generate(causal_lm, prompts[1], max_new_tokens=NEW, stop_token_ids=None)
    assert single.ndim == 1
    np.testing.assert_array_equal(single, expected[1])
    same_length = np.array([prompts[1]] * 4)  # a dense array: every position is a real token
    dense = generate(causal_lm, same_length, max_new_tokens=NEW, stop_token_ids=None)
    np.testing.assert_array_equal(dense, np.tile(expected[1], (4, 1)))


def test_no_retracing_within_a_shape_bucket(causal_lm):
    def run(lengths, **kwargs):
        generate(causal_lm, prompts_of_lengths(lengths, seed=len(lengths)), **kwargs)

    run([2, 5, 1, 3], max_new_tokens=4)  # batch bucket 4, 8-token prompts, 16 cache slots
    traced = trace_count(causal_lm)
    # Other prompts, lengths, batch sizes, budgets, seeds and stop ids in the same bucket.
    run([8, 1, 4], max_new_tokens=8, seed=1)
    run([3, 3, 2, 7], max_new_tokens=2, seed=5, stop_token_ids=[7, 9])
    run([6, 6, 6], max_new_tokens=1, stop_token_ids=None)
    assert trace_count(causal_lm) == traced
    run([12, 3, 1, 1], max_new_tokens=4)  # a 16-token prompt bucket: one new trace
    assert trace_count(causal_lm) == traced + 1
    run([10, 3, 9], max_new_tokens=5, seed=3)
    assert trace_count(causal_lm) == traced + 1


def test_decoding_loops_run_in_a_graph_with_symbolic_shapes(causal_lm, seq2seq_lm):
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def continue_prompts(token_ids, lengths, max_new_tokens):
        return decode_causal(
            causal_lm,
            token_ids,
            lengths,
            cache_length=24,
            max_new_tokens=max_new_tokens,
            sampler=GreedySampler(),
        )

    prompts = prompts_of_lengths([3, 7, 1], seed=23)
    ragged = tf.ragged.constant(prompts, dtype=tf.int32)
    out = continue_prompts(ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32), NEW)
    expected = generate(causal_lm, prompts, max_new_tokens=NEW, stop_token_ids=None)
    np.testing.assert_array_equal(out["token_ids"][:, : expected.shape[1]], expected)
    assert out["lengths"].numpy().tolist() == [3 + NEW, 7 + NEW, 1 + NEW]

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None])]
    )
    def translate(source_ids, source_mask):
        return decode_seq2seq(
            seq2seq_lm,
            source_ids,
            source_mask,
            start_id=START,
            cache_length=NEW + 1,
            max_new_tokens=NEW,
            sampler=BeamSampler(1),
            stop_token_ids=tf.constant([END, -1]),
        )

    sources = prompts_of_lengths([5, 2, 8, 4], seed=3)
    ragged = tf.ragged.constant(sources, dtype=tf.int32)
    mask = tf.sequence_mask(ragged.row_lengths(), dtype=tf.float32)
    out = translate(ragged.to_tensor(), mask)
    expected = generate(
        seq2seq_lm,
        sources,
        max_new_tokens=NEW,
        start_id=START,
        stop_token_ids=[END],
        sampler=BeamSampler(1),
    )
    assert out["token_ids"].shape == (4, NEW + 1)
    np.testing.assert_array_equal(out["token_ids"][:, 1 : 1 + expected.shape[1]], expected)


def test_tokenizer_is_not_part_of_the_model(tmp_path):
    class TrackedTokenizer(WordTokenizer):
        def __init__(self, words):
            super().__init__(words)
            self.state = tf.Variable(1)  # would show up in a checkpoint if tracked

    model = CausalLM(Decoder(**tiny_config()))
    assert model.tokenizer is None
    model.tokenizer = TrackedTokenizer(WORDS)
    assert isinstance(model.tokenizer, TrackedTokenizer)
    assert "tokenizer" not in str(model.get_config())
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    assert not any("tokenizer" in name for name, _ in tf.train.list_variables(path))


def test_with_a_kerasllm_wordpiece_tokenizer():
    tokenizer = kt.train_wordpiece(["the cat sat on the mat", "a dog ran"] * 20, 60)
    model = CausalLM(
        Decoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size, num_layers=1))
    )
    model.tokenizer = tokenizer
    texts = model.generate(["the cat", "a dog ran"], max_new_tokens=4, sampler="top_k", seed=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert texts[0].startswith("the cat") and texts[1].startswith("a dog ran")
    again = model.generate(["the cat", "a dog ran"], max_new_tokens=4, sampler="top_k", seed=3)
    assert again == texts


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: generate(m, [[5]], sampler="beams"), "Did you mean 'beam'"),
        (lambda m: generate(m, ["some text"]), "String inputs need a tokenizer"),
        (lambda m: generate(m, [[5] * 30], max_new_tokens=10), "max_sequence_length=32"),
        (lambda m: generate(m, [[5, 6], []]), "Prompt 1 is empty"),
        (lambda m: generate(m, [[5, 200]]), r"outside \[0, 97\)"),
        (lambda m: generate(m, [[5, -1]]), r"outside \[0, 97\)"),
        (lambda m: generate(m, [[5.0, 6.0]]), "integer token ids"),
        (lambda m: generate(m, np.ones((2, 2, 2), "int32")), "must be 1-D or 2-D"),
        (lambda m: generate(m, 3.5), "Unsupported input type float"),
        (lambda m: generate(m, []), "`inputs` is empty"),
        (
            lambda m: generate(m, {"token_ids": [[5, 6, 7]], "padding_mask": [[1, 0, 1]]}),
            "right-padding",
        ),
        (lambda m: generate(m, {"token_ids": [[5, 6]]}), "missing \\['padding_mask'\\]"),
        (lambda m: generate(m, [[5]], max_new_tokens=0), "`max_new_tokens` must be a positive"),
        (lambda m: generate(m, [[5]], seed="x"), "`seed` must be an int"),
        (lambda m: generate(m, [[5]], stop_token_ids="end"), "'auto', None or a sequence"),
        (lambda m: generate(m, [[5]], stop_token_ids=[500]), r"`stop_token_ids` \[500\]"),
        (lambda m: generate(m, [[5]], sampler=BeamSampler(98)), "exceeds the vocabulary size"),
    ],
)
def test_bad_inputs_raise_clear_errors(causal_lm, call, message):
    with pytest.raises(ValueError, match=message):
        call(causal_lm)


def test_task_specific_errors(seq2seq_lm):
    with pytest.raises(ValueError, match="pass `start_id`"):
        generate(seq2seq_lm, [[5, 6]])
    with pytest.raises(ValueError, match="applies to CausalLM only"):
        generate(seq2seq_lm, [[5, 6]], start_id=START, strip_prompt=True)
    learned_positions = Seq2SeqLM(EncoderDecoder(**tiny_config("learned_postnorm")))
    with pytest.raises(ValueError, match="at most 32 tokens"):
        generate(learned_positions, [[5] * 33], start_id=START)
    with pytest.raises(ValueError, match="max_new_tokens must be at most 31"):
        generate(learned_positions, [[5]], start_id=START, max_new_tokens=32)
    with pytest.raises(ValueError, match="needs a CausalLM or a Seq2SeqLM; got MaskedLM"):
        generate(MaskedLM(Encoder(**tiny_config())), [[5, 6]])


@pytest.mark.parametrize("as_list", [False, True], ids=["role_dict", "keras_hub_list"])
def test_string_outputs_drop_special_tokens(causal_lm, with_tokenizer, as_list):
    # The prompt's unknown word becomes [UNK] (id 3), a special token: like the served
    # signatures, text outputs leave special tokens out.
    tokenizer = WordTokenizer(WORDS)
    roles = {"pad": 0, "start": START, "end": END, "unk": 3}
    tokenizer.special_token_ids = list(roles.values()) if as_list else roles
    model = with_tokenizer(causal_lm)
    model.tokenizer = tokenizer
    text = model.generate("w1 zebra w2", max_new_tokens=NEW, stop_token_ids=None)
    ids = generate(model, tokenizer.tokenize(["w1 zebra w2"]), max_new_tokens=NEW,
                   stop_token_ids=None)  # fmt: skip
    assert ids[0][1] == 3 and "[UNK]" not in text
    assert text == " ".join(VOCABULARY[i] for i in ids[0] if i > 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(start_id=99999), r"`start_id` must be a token id in \[0, 97\).*got 99999"),
        (dict(start_id=-1), r"`start_id` must be a token id in \[0, 97\).*got -1"),
        (dict(start_id=97), r"`start_id` must be a token id in \[0, 97\)"),
        (dict(start_id=1.0), r"`start_id` must be an integer token id"),
        (dict(start_id=True), r"`start_id` must be an integer token id"),
        (dict(start_id=START, stop_token_ids=[2.5]), "`stop_token_ids` must be 'auto', None"),
        (dict(start_id=START, max_new_tokens=True), "`max_new_tokens` must be a positive"),
    ],
)
def test_seq2seq_id_arguments_are_range_checked_before_decoding(seq2seq_lm, kwargs, message):
    # Inside the XLA loop an out-of-range start id is clamped, not an error: it used to
    # generate silently from another token.
    before = trace_count(seq2seq_lm)
    with pytest.raises(ValueError, match=message):
        generate(seq2seq_lm, [[5, 6]], **kwargs)
    assert trace_count(seq2seq_lm) == before  # refused before anything was compiled


def test_tokenizer_ids_and_causal_only_arguments_are_checked(seq2seq_lm, causal_lm):
    class OutOfRange(WordTokenizer):
        """A tokenizer whose start, end or pad id lies outside the model's 97 ids."""

    tokenizer = OutOfRange(WORDS)
    seq2seq_lm.tokenizer = tokenizer
    try:
        tokenizer.start_id = 120
        with pytest.raises(ValueError, match=r"`start_id` \(the tokenizer's start id\) must"):
            generate(seq2seq_lm, [[5, 6]])
        tokenizer.start_id, tokenizer.end_id = START, 200
        with pytest.raises(ValueError, match=r"`stop_token_ids` \(the tokenizer's end id\)"):
            generate(seq2seq_lm, [[5, 6]])
        tokenizer.end_id, tokenizer.pad_id = END, 300
        with pytest.raises(ValueError, match=r"`pad_id` \(the tokenizer's\) must be a token id"):
            generate(seq2seq_lm, [[5, 6]])
    finally:
        seq2seq_lm.tokenizer = None
    with pytest.raises(ValueError, match="`start_id` applies to Seq2SeqLM only"):
        generate(causal_lm, [[5, 6]], start_id=START)
    with pytest.raises(ValueError, match="`strip_prompt` must be True or False"):
        generate(causal_lm, [[5, 6]], strip_prompt="yes")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomSampler(temperature=float("nan")), "`temperature` must be"),
        (lambda: RandomSampler(temperature=True), "`temperature` must be"),
        (lambda: BeamSampler(2, length_penalty=float("inf")), "`length_penalty` must be a finite"),
        (lambda: BeamSampler(2, return_all_beams="no"), "`return_all_beams` must be True or"),
    ],
)
def test_sampler_settings_must_be_finite_numbers(make, message):
    with pytest.raises(ValueError, match=message):
        make()
