"""Keras' own `model.fit` on raw strings under MirroredStrategy (two logical CPU devices): a
tiny classifier built and compiled in the strategy's scope with its preprocessor and the
`compile()` defaults. Prints JSON: replicas, the loss per epoch, the prediction shape.

Usage: python keras_fit_mirrored.py
"""

import json

import tensorflow as tf

# Logical devices must be configured before TensorFlow initializes its runtime.
(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasllm import preprocessors, tokenizers, zoo  # noqa: E402
from kerasllm.testing import synthetic_reviews, tiny_config  # noqa: E402

keras.utils.set_random_seed(0)
texts, labels = synthetic_reviews(64)
tokenizer = tokenizers.train_wordpiece(texts, vocabulary_size=60)
strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
with strategy.scope():
    config = tiny_config(vocabulary_size=tokenizer.vocabulary_size)
    classifier = zoo.get("bert_tiny", task="classifier", num_classes=2, weights=None, **config)
    classifier.preprocessor = preprocessors.for_task(classifier, tokenizer)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
history = classifier.fit(texts, np.array(labels), epochs=4, batch_size=16, verbose=0)
print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "loss": history.history["loss"],
            "predict_shape": list(classifier.predict(["funny warm film"], verbose=0).shape),
        }
    )
)
