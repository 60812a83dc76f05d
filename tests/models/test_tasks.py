"""Task heads: shapes, float32 logits under mixed precision, saving and reloading."""

import keras
import numpy as np
import pytest
import tensorflow as tf

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
from kerasllm.testing import decoder_inputs, encoder_inputs, seq2seq_inputs, tiny_config


def _task_cases():
    mlm_inputs = {**encoder_inputs(), "mask_positions": np.array([[1, 3], [0, 2]], "int32")}
    return {
        "masked_lm": (lambda: MaskedLM(Encoder(**tiny_config())), mlm_inputs, (2, 2, 97)),
        "causal_lm": (lambda: CausalLM(Decoder(**tiny_config())), decoder_inputs(), (2, 8, 97)),
        "seq2seq_lm": (
            lambda: Seq2SeqLM(EncoderDecoder(**tiny_config())),
            seq2seq_inputs(),
            (2, 7, 97),
        ),
        "classifier": (
            lambda: SequenceClassifier(Encoder(**tiny_config()), num_classes=3),
            encoder_inputs(),
            (2, 3),
        ),
        "decoder_classifier": (
            lambda: SequenceClassifier(Decoder(**tiny_config()), num_classes=2),
            decoder_inputs(lengths=[8, 3]),
            (2, 2),
        ),
        "token_classifier": (
            lambda: TokenClassifier(Encoder(**tiny_config()), num_classes=5),
            encoder_inputs(),
            (2, 8, 5),
        ),
    }


CASES = _task_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_task_saves_and_reloads_with_identical_outputs(name, tmp_path):
    build, inputs, shape = CASES[name]
    model = build()
    out = model(inputs)
    assert out.shape == shape and out.dtype == "float32"
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    np.testing.assert_allclose(restored(inputs), out, atol=1e-6)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_bfloat16_forward_and_backward(name):
    keras.config.set_dtype_policy("mixed_bfloat16")
    build, inputs, shape = CASES[name]
    model = build()
    assert model.backbone.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)
    with tf.GradientTape() as tape:
        logits = model(inputs, training=True)
        labels = np.zeros(shape[:-1], "int32")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert logits.dtype == "float32" and loss.dtype == "float32"
    grads = tape.gradient(loss, model.trainable_weights)
    # Only BERT's pooler may be unused (the masked-LM head reads the sequence output).
    unused = [w.path for w, g in zip(model.trainable_weights, grads) if g is None]
    assert all(path.startswith("pooler/") for path in unused), unused
    grads = [g for g in grads if g is not None]
    assert all(np.all(np.isfinite(tf.cast(tf.convert_to_tensor(g), "float32"))) for g in grads)


def test_decoder_classifier_uses_last_real_token():
    model = SequenceClassifier(Decoder(**tiny_config()), num_classes=2)
    inputs = decoder_inputs(lengths=[8, 3])
    base = model(inputs).numpy()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][1, 3:] = 5  # padding content must not matter
    np.testing.assert_allclose(model(changed), base, atol=1e-5)


def test_task_rejects_wrong_backbone():
    with pytest.raises(ValueError, match="CausalLM needs a Decoder backbone"):
        CausalLM(Encoder(**tiny_config()))
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(Encoder(**tiny_config()), num_classes=1)
