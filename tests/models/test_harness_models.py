"""Every backbone in every architecture variant, every task model and every preprocessor
through the `kerasllm.testing` harness (`run_backbone_test`, `run_task_test`,
`run_preprocessor_test`).

A new backbone, task or preprocessor gets a case here (the `*_has_a_harness_case` tests fail
until it does).
"""

import inspect

import numpy as np
import pytest

import kerasllm.tokenizers as kt
from kerasllm import models, preprocessors
from kerasllm.models import (
    CausalLM,
    Decoder,
    Encoder,
    EncoderDecoder,
    MaskedLM,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)
from kerasllm.testing import (
    TINY_VARIANTS,
    decoder_inputs,
    encoder_inputs,
    run_backbone_test,
    run_preprocessor_test,
    run_task_test,
    seq2seq_inputs,
    tiny_config,
)

VARIANTS = sorted(TINY_VARIANTS)
V, H = 97, 16
# Padded rows: the harness changes the tokens at padded positions and checks the outputs at
# real positions.
ENCODER_INPUTS = encoder_inputs(lengths=[8, 5])
DECODER_INPUTS = decoder_inputs(lengths=[8, 6])
SEQ2SEQ_INPUTS = seq2seq_inputs(source_lengths=[9, 4], target_lengths=[7, 5])

BACKBONES = {
    Encoder: (ENCODER_INPUTS, {"sequence_output": (2, 8, H), "pooled_output": (2, H)}),
    Decoder: (DECODER_INPUTS, {"sequence_output": (2, 8, H)}),
    EncoderDecoder: (
        SEQ2SEQ_INPUTS,
        {"encoder_sequence_output": (2, 9, H), "decoder_sequence_output": (2, 7, H)},
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cls", list(BACKBONES), ids=lambda c: c.__name__)
def test_backbone_harness(cls, variant):
    inputs, shapes = BACKBONES[cls]
    run_backbone_test(cls, tiny_config(variant), inputs, shapes)


def test_backbone_harness_with_per_block_shapes():
    """`layer_shapes` (what structured pruning writes): each block its own heads and width."""
    shapes = [
        {"num_heads": 2, "intermediate_dim": 12},
        {"num_heads": 2, "num_key_value_heads": 1, "cross_attention_heads": 2},
        {"intermediate_dim": 20, "cross_attention_heads": 4, "cross_attention_key_value_heads": 2},
    ]
    config = tiny_config("rotary_gqa_swiglu", num_layers=1, num_decoder_layers=2)
    inputs, outputs = BACKBONES[EncoderDecoder]
    run_backbone_test(EncoderDecoder, {**config, "layer_shapes": shapes}, inputs, outputs)


def test_every_backbone_has_a_harness_case():
    exported = {
        getattr(models, n)
        for n in models.__all__
        if inspect.isclass(getattr(models, n))
        and issubclass(getattr(models, n), models.Backbone)
        and getattr(models, n) is not models.Backbone
    }
    missing = sorted(c.__name__ for c in exported - set(BACKBONES))
    assert not missing, f"add a run_backbone_test case for {missing} in {__file__}"


def _next_tokens(inputs):
    return np.roll(inputs["token_ids"], -1, axis=1)


MLM_INPUTS = {**ENCODER_INPUTS, "mask_positions": np.array([[1, 6], [0, 3]], "int32")}


def _task_cases(variant):
    """name -> (task class, backbone, task kwargs, inputs, output shape, labels, real output
    mask, weights the outputs do not use)."""
    config = tiny_config(variant)
    return {
        "masked_lm": (
            MaskedLM,
            Encoder(**config),
            {},
            MLM_INPUTS,
            (2, 2, V),
            np.array([[5, 9], [7, 11]]),
            None,  # the masked positions are real
            ("pooler/",),  # the head reads the sequence output
        ),
        "masked_lm_nsp": (
            MaskedLM,
            Encoder(**config),
            {"next_sentence_prediction": True},
            MLM_INPUTS,
            {"mlm": (2, 2, V), "nsp": (2, 2)},
            {"mlm": np.array([[5, 9], [7, 11]]), "nsp": np.array([1, 0])},
            None,
            (),  # the next-sentence head reads the pooled output: every weight is used
        ),
        "causal_lm": (
            CausalLM,
            Decoder(**config),
            {},
            DECODER_INPUTS,
            (2, 8, V),
            _next_tokens(DECODER_INPUTS),
            DECODER_INPUTS["padding_mask"],
            (),
        ),
        "seq2seq_lm": (
            Seq2SeqLM,
            EncoderDecoder(**config),
            {},
            SEQ2SEQ_INPUTS,
            (2, 7, V),
            np.roll(SEQ2SEQ_INPUTS["decoder_token_ids"], -1, axis=1),
            SEQ2SEQ_INPUTS["decoder_padding_mask"],
            (),
        ),
        "sequence_classifier": (
            SequenceClassifier,
            Encoder(**config),
            {"num_classes": 3},
            ENCODER_INPUTS,
            (2, 3),
            np.array([0, 2]),
            None,
            (),
        ),
        "sequence_classifier_decoder_last": (
            SequenceClassifier,
            Decoder(**config),
            {"num_classes": 2},
            DECODER_INPUTS,
            (2, 2),
            np.array([1, 0]),
            None,
            (),
        ),
        "sequence_classifier_decoder_mean": (
            SequenceClassifier,
            Decoder(**config),
            {"num_classes": 2, "pooling": "mean"},
            DECODER_INPUTS,
            (2, 2),
            np.array([1, 0]),
            None,
            (),
        ),
        "token_classifier": (
            TokenClassifier,
            Encoder(**config),
            {"num_classes": 5},
            ENCODER_INPUTS,
            (2, 8, 5),
            np.arange(16).reshape(2, 8) % 5,
            ENCODER_INPUTS["padding_mask"],
            ("pooler/",),
        ),
        "question_answerer": (
            models.QuestionAnswerer,
            Encoder(**config),
            {},
            ENCODER_INPUTS,
            (2, 8, 2),
            np.array([[2, 3], [1, 1]]),  # start/end token of each window's answer
            ENCODER_INPUTS["padding_mask"],
            ("pooler/",),
        ),
    }


TASKS = sorted(_task_cases("learned_postnorm"))
# Every task on the default variant; the grouped-query/rotary/gated and relative-bias variants
# on the generative tasks, whose decoders they change most.
TASK_PARAMS = [(task, "learned_postnorm") for task in TASKS] + [
    (task, variant)
    for task in ("causal_lm", "seq2seq_lm")
    for variant in ("rotary_gqa_swiglu", "relative_t5")
]


@pytest.mark.parametrize(("task", "variant"), TASK_PARAMS)
def test_task_harness(task, variant):
    cls, backbone, kwargs, inputs, shape, labels, real, unused = _task_cases(variant)[task]
    run_task_test(
        cls,
        {"backbone": backbone, **kwargs},
        inputs,
        shape,
        labels=labels,
        real_output_mask=real,
        allow_unused_weights=unused,
    )


def test_every_task_has_a_harness_case():
    exported = {
        getattr(models, n)
        for n in models.__all__
        if inspect.isclass(getattr(models, n))
        and issubclass(getattr(models, n), models.Task)
        and getattr(models, n) is not models.Task
    }
    covered = {case[0] for case in _task_cases("learned_postnorm").values()}
    missing = sorted(c.__name__ for c in exported - covered)
    assert not missing, f"add a run_task_test case for {missing} in {__file__}"


# ------------------------------------------------------------------------------ preprocessors
CORPUS = ["a good film", "a bad film", "the cat sat on the mat", "what a ride"] * 10


@pytest.fixture(scope="module")
def wordpiece():
    return kt.train_wordpiece(CORPUS, vocabulary_size=60)


def _text_classifier_case(tokenizer):
    pre = preprocessors.TextClassifierPreprocessor(tokenizer, sequence_length=12)
    model = SequenceClassifier(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size)), num_classes=2
    )
    texts = ["a good film", "", "the cat sat on the mat " * 4]
    return pre, texts, np.array([1, 0, 1]), model


def _text_classifier_pairs_case(tokenizer):
    pre, _, labels, model = _text_classifier_case(tokenizer)
    return pre, (["a good film", "what", "a ride"], ["a bad film", "", "cat"]), labels, model


def _token_classifier_case(tokenizer):
    pre = preprocessors.TokenClassifierPreprocessor(tokenizer, sequence_length=12)
    model = TokenClassifier(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size)), num_classes=3
    )
    texts = ["a good film", "the cat sat"]
    return pre, texts, np.array([[1, 0, 2], [0, 2, 1]]), model


def _masked_lm_case(tokenizer):
    pre = preprocessors.MaskedLMPreprocessor(tokenizer, sequence_length=12, mask_rate=0.3)
    model = MaskedLM(Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size)))
    # A seed makes the masks reproducible, so eager, tf.data and reloaded calls compare.
    return pre, ["the cat sat on the mat", "a good film"], None, model, {"seed": 3}


def _causal_lm_case(tokenizer):
    pre = preprocessors.CausalLMPreprocessor(tokenizer, sequence_length=10)
    model = CausalLM(Decoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size)))
    return pre, ["the cat sat on the mat", "a good film", ""], None, model


def _seq2seq_lm_case(tokenizer):
    pre = preprocessors.Seq2SeqLMPreprocessor(tokenizer, sequence_length=10)
    model = Seq2SeqLM(EncoderDecoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size)))
    # Its config holds both lengths instead of `sequence_length`, their default.
    sources, targets = ["a good film", "what a ride"], ["a bad film", "the cat sat"]
    return pre, sources, targets, model, {}, ("sequence_length",)


def _question_answerer_case(tokenizer):
    # Stride 2 over a context longer than the window: one pair gives several rows.
    pre = preprocessors.QuestionAnswererPreprocessor(tokenizer, sequence_length=10, stride=2)
    model = models.QuestionAnswerer(
        Encoder(**tiny_config(vocabulary_size=tokenizer.vocabulary_size))
    )
    questions = ["what sat", "", "a film"]
    contexts = ["the cat sat on the mat", "a good film", ""]
    return pre, (questions, contexts), np.array([[4, 7], [2, 6], [-1, -1]]), model


#: Preprocessor class name -> builders of (preprocessor, inputs, labels, task model[, call
#: kwargs[, derived constructor arguments]]) from a tokenizer with [CLS]/[SEP] and start/end
#: ids.
PREPROCESSOR_CASES = {
    "TextClassifierPreprocessor": [_text_classifier_case, _text_classifier_pairs_case],
    "TokenClassifierPreprocessor": [_token_classifier_case],
    "MaskedLMPreprocessor": [_masked_lm_case],
    "CausalLMPreprocessor": [_causal_lm_case],
    "Seq2SeqLMPreprocessor": [_seq2seq_lm_case],
    "QuestionAnswererPreprocessor": [_question_answerer_case],
}


def _preprocessor_classes() -> list[str]:
    """The concrete preprocessor classes `kerasllm.preprocessors` exports."""
    names = []
    for name in getattr(preprocessors, "__all__", ()):
        cls = getattr(preprocessors, name)
        if not (inspect.isclass(cls) and issubclass(cls, preprocessors.Preprocessor)):
            continue
        # Base classes (Preprocessor, shared bases of several task preprocessors) implement
        # no `call` of their own and are covered through their subclasses.
        if any(
            "call" in vars(klass)
            for klass in cls.__mro__[: cls.__mro__.index(preprocessors.Preprocessor)]
        ):
            names.append(name)
    return sorted(names)


@pytest.mark.parametrize("name", _preprocessor_classes())
def test_preprocessor_harness(name, wordpiece):
    assert name in PREPROCESSOR_CASES, (
        f"add a run_preprocessor_test case for {name} to PREPROCESSOR_CASES in {__file__}"
    )
    for build in PREPROCESSOR_CASES[name]:
        pre, inputs, labels, model, call_kwargs, derived = (*build(wordpiece), {}, ())[:6]
        run_preprocessor_test(
            pre,
            inputs,
            labels=labels,
            model=model,
            call_kwargs=call_kwargs,
            derived_arguments=derived,
        )
