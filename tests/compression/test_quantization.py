"""Post-training quantization: what is quantized, the compiled decoding loops, save / load /
zoo.get, a `.keras` round trip, SavedModel export served from a fresh process, and errors."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from compression_helpers import run_fresh

from kerasllm import _compat, bundle, compression, preprocessors, testing, tokenizers, zoo
from kerasllm.export import export
from kerasllm.generation import generate, trace_count
from kerasllm.layers import TokenEmbedding
from kerasllm.models import CausalLM, Decoder, Encoder, SequenceClassifier

TEXTS = ["what a good film", "what a bad film", "the cat sat on the mat", "a dog ran"]
SOURCES = [[5, 6, 7, 8, 9], [10, 11, 12]]
MAX_LENGTH = 5


def _seq2seq_inputs(vocabulary_size: int) -> dict:
    ids = testing.random_ids(2, 6, vocabulary_size, seed=1)
    ones = np.ones_like(ids)
    return {
        "encoder_token_ids": ids,
        "encoder_padding_mask": ones,
        "decoder_token_ids": ids[:, ::-1].copy(),
        "decoder_padding_mask": ones,
    }


@pytest.fixture(scope="module")
def translation_folder(tmp_path_factory):
    return testing.tiny_translation_bundle(tmp_path_factory.mktemp("float") / "bundle")


@pytest.fixture(scope="module")
def classifier_bundle():
    tok = tokenizers.train_wordpiece(TEXTS * 10, vocabulary_size=80)
    model = SequenceClassifier(
        Encoder(
            **testing.tiny_config(
                num_layers=1, max_sequence_length=16, vocabulary_size=tok.vocabulary_size
            ),
            pooler=True,
        ),
        num_classes=3,
        dropout=0.0,
    )
    preprocessors.attach(model, {"text": tok})
    return bundle.Bundle(model, {"text": tok}, {"sequence_length": 10})


def test_int8_reaches_every_projection_and_the_tied_embedding_and_survives_save_load(
    translation_folder, tmp_path
):
    loaded = bundle.load(translation_folder)
    model = loaded.model
    inputs = _seq2seq_inputs(model.backbone.vocabulary_size)
    float_logits = np.asarray(model(inputs))

    compression.quantize(loaded, "int8")

    layers = compression.quantized_layers(model)
    dense = [
        layer for layer in _compat.nested_layers(model) if isinstance(layer, keras.layers.Dense)
    ]
    assert dense and all(layer.quantization_mode == "int8" for layer in dense)
    assert model.backbone.token_embedding.quantization_mode == "int8"  # tied: lookup + logits
    assert set(layers.values()) == {"int8"} and len(layers) == len(dense) + 1
    step = loaded.metadata["compression"][-1]
    assert (step["method"], step["mode"], step["embeddings"]) == ("quantization", "int8", "int8")
    assert step["quantized_layers"] == len(layers)

    int8_logits = np.asarray(model(inputs))
    assert not np.allclose(int8_logits, float_logits, atol=1e-6)
    np.testing.assert_allclose(int8_logits, float_logits, atol=0.05)  # but close

    folder = loaded.save(tmp_path / "int8")
    size = compression.weights_file_size(folder)
    assert size < 0.4 * compression.weights_file_size(translation_folder)
    again = bundle.load(folder)
    assert compression.quantized_layers(again.model) == layers
    assert again.metadata["compression"] == loaded.metadata["compression"]
    np.testing.assert_array_equal(np.asarray(again.model(inputs)), int8_logits)
    # A quantized bundle is a preset directory like any other.
    from_zoo = zoo.get(folder)
    assert compression.quantized_layers(from_zoo) == layers
    assert from_zoo.preprocessor is not None
    np.testing.assert_array_equal(np.asarray(from_zoo(inputs)), int8_logits)


def test_decoding_loops_compiled_before_quantizing_are_not_reused():
    model = CausalLM(
        Decoder(
            vocabulary_size=50,
            num_layers=1,
            num_heads=2,
            hidden_dim=8,
            intermediate_dim=16,
            max_sequence_length=16,
        )
    )
    prompt = [[5, 6, 7]]
    generate(model, prompt, max_new_tokens=3)
    traces = trace_count(model)
    compression.quantize(model, "int8")
    # A loop traced on the float model holds the float variables; reusing it would decode
    # with them (and be no quantized model at all).
    generate(model, prompt, max_new_tokens=3)
    assert trace_count(model) == traces + 1
    generate(model, prompt, max_new_tokens=3)
    assert trace_count(model) == traces + 1  # the new loop is cached in turn


def test_int4_weight_only_with_float_embeddings_round_trips(classifier_bundle, tmp_path):
    item = _copy(classifier_bundle)
    x = item.model.preprocessor(np.asarray(TEXTS))
    before = np.asarray(item.model(x))

    compression.quantize(item, "int4", keep_embeddings=True, block_size=16)

    modes = compression.quantized_layers(item.model)
    assert set(modes.values()) == {"int4"}
    assert not any(isinstance(layer, TokenEmbedding) for layer in _layers(item.model, modes))
    assert item.model.backbone.token_embedding.quantization_mode is None
    assert any("classifier" in path for path in modes)  # the task head too
    assert item.metadata["compression"][-1]["embeddings"] == "float"
    after = np.asarray(item.model(x))
    assert not np.allclose(after, before, atol=1e-7)
    np.testing.assert_allclose(after, before, atol=0.1)

    again = bundle.load(item.save(tmp_path / "int4"))
    assert compression.quantized_layers(again.model) == modes
    np.testing.assert_array_equal(np.asarray(again.model(x)), after)
    path = tmp_path / "int4.keras"
    item.model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), after)
    assert compression.quantized_layers(reloaded) == modes


def _layers(model, paths):
    return [layer for layer in _compat.nested_layers(model) if layer.path in paths]


def _copy(item: bundle.Bundle) -> bundle.Bundle:
    """A bundle with a new model holding the same weights (quantizing changes a model)."""
    model = type(item.model).from_config(item.model.get_config())
    model.set_weights(item.model.get_weights())
    preprocessors.attach(model, item.tokenizers)
    return bundle.Bundle(model, item.tokenizers, dict(item.metadata))


SERVE = r"""
import json, sys
sys.modules["kerasllm"] = None  # the export must serve without kerasllm
import tensorflow as tf
import tensorflow_text  # noqa: F401
paths, texts, ids = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
clf = tf.saved_model.load(paths["classifier"]).signatures["serving_default"]
seq = tf.saved_model.load(paths["seq2seq"]).signatures["translate_token_ids"]
ragged = tf.ragged.constant(ids)
out = seq(token_ids=ragged.to_tensor(), padding_mask=tf.ones_like(ragged).to_tensor())
print("RESULT" + json.dumps({
    "probabilities": clf(text=tf.constant(texts))["probabilities"].numpy().tolist(),
    "token_ids": out["token_ids"].numpy().tolist(),
    "lengths": out["lengths"].numpy().tolist(),
}))
"""


def test_quantized_bundles_export_and_serve_from_a_fresh_process(
    translation_folder, classifier_bundle, tmp_path
):
    seq2seq = compression.quantize(bundle.load(translation_folder), "int8")
    classifier = compression.quantize(_copy(classifier_bundle), "int8")
    paths = {
        "seq2seq": str(export(seq2seq, tmp_path / "seq2seq", max_length=MAX_LENGTH, beams=1)),
        "classifier": str(export(classifier, tmp_path / "classifier")),
    }
    served = run_fresh(
        SERVE, json.dumps(paths), json.dumps(TEXTS), json.dumps(SOURCES), cwd=tmp_path
    )
    expected = classifier.model.predict(TEXTS, verbose=0)
    probabilities = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-4)
    tok = seq2seq.tokenizers["source"]
    ids = generate(
        seq2seq.model,
        SOURCES,
        max_new_tokens=MAX_LENGTH,
        stop_token_ids=[tok.end_id],
        start_id=tok.start_id,
    )
    for row, got, length in zip(ids, served["token_ids"], served["lengths"]):
        assert got[:length] == [int(t) for t in row if t != 0][:length]


def test_clear_errors(classifier_bundle, translation_folder):
    model = classifier_bundle.model
    with pytest.raises(ValueError, match="`mode` must be one of"):
        compression.quantize(model, "int3")
    with pytest.raises(ValueError, match="block_size"):
        compression.quantize(model, "int4", block_size=0)
    with pytest.raises(TypeError, match="task model"):
        compression.quantize(model.backbone, "int8")
    quantized = compression.quantize(bundle.load(translation_folder).model, "int8")
    with pytest.raises(ValueError, match="already quantized"):
        compression.quantize(quantized, "int8")
    spec = quantized.quantization_spec()
    spec[0]["layers"] = ["no_such_layer"]
    with pytest.raises(ValueError, match="no_such_layer"):
        bundle.load(translation_folder).model.apply_quantization_spec(spec)
