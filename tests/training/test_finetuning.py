"""Freezing, layer-wise learning-rate decay and LoRA."""

import numpy as np
import pytest
import tensorflow as tf
from training_helpers import SMALL

from kerasllm import zoo
from kerasllm.training import Trainer, TrainerConfig, finetuning


def classifier(num_layers=2):
    return zoo.get(
        "bert_tiny",
        task="classifier",
        num_classes=2,
        weights=None,
        **{**SMALL, "num_layers": num_layers},
    )


def classification_batches(batch_size=8, num_examples=32, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, SMALL["vocabulary_size"], (num_examples, 8)).astype("int32")
    labels = (ids[:, 0] % 2).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch_size)


def trainable_paths(model):
    return {v.path for v in model.trainable_weights}


def test_freeze_backbone_leaves_only_the_head():
    model = classifier()
    finetuning.freeze_backbone(model)
    assert trainable_paths(model) == {"classifier/kernel", "classifier/bias"}


def test_freeze_lower_layers():
    model = classifier()
    finetuning.freeze_lower_layers(model, 1)
    paths = trainable_paths(model)
    assert not any(
        p.startswith(("token_embedding", "position_embedding", "segment")) for p in paths
    )
    assert not any(p.startswith("encoder_layer_0/") for p in paths)
    assert any(p.startswith("encoder_layer_1/") for p in paths)
    assert {"classifier/kernel", "pooler/kernel"} <= paths
    with pytest.raises(ValueError, match=r"must be in \[0, 2\]"):
        finetuning.freeze_lower_layers(classifier(), 3)


def test_layerwise_learning_rate_multipliers():
    factors = finetuning.layerwise_lr_multipliers(classifier(), 0.5)
    assert factors["classifier/kernel"] == 1.0
    assert factors["pooler/kernel"] == 1.0
    assert factors["encoder_layer_1/self_attention/query/kernel"] == 0.5
    assert factors["encoder_layer_0/self_attention/value/kernel"] == 0.25
    assert factors["token_embedding/embeddings"] == 0.125


def test_lora_adapts_query_and_value_and_trains_only_adapters_and_head(tmp_path):
    data = classification_batches()
    x, _ = next(iter(data))
    reference = classifier(num_layers=1)
    before = reference(x).numpy()

    def build():
        model = classifier(num_layers=1)
        model.set_weights(reference.get_weights())
        return model

    trainer = Trainer(
        build,
        "classification",
        TrainerConfig(str(tmp_path), steps=3, lora_rank=2, learning_rate=1e-2, verbose=0),
        strategy="one_device",
    )
    model = trainer.model
    # B starts at zero: the adapted model computes the same function.
    np.testing.assert_allclose(model(x).numpy(), before, atol=1e-5)
    lora = {p for p in trainable_paths(model) if "lora" in p}
    assert lora == {
        f"encoder_layer_0/self_attention/{name}/lora_kernel_{ab}"
        for name in ("query", "value")
        for ab in "ab"
    }
    assert trainable_paths(model) - lora == {"classifier/kernel", "classifier/bias"}
    frozen = {v.path: v.numpy() for v in model.weights if not v.trainable}
    adapters = {v.path: v.numpy() for v in model.trainable_weights}
    trainer.fit(data)
    for variable in model.weights:
        if variable.path in frozen:
            np.testing.assert_array_equal(variable.numpy(), frozen[variable.path])
    assert all(
        not np.array_equal(v.numpy(), adapters[v.path])
        for v in model.trainable_weights
        if v.path.endswith("lora_kernel_b")
    )
