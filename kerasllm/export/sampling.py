"""`RuntimeSampler`: temperature, top-k and top-p given as tensors at request time.

The samplers of `kerasllm.generation` fix their settings when the graph is traced (Python
numbers, validated once). A serving signature instead takes them as inputs, so one exported
function serves every setting; the token-choice rules are the same (top-k, then the nucleus cut
of `TopPSampler`, then a stateless categorical draw).
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.generation.samplers import Sampler


class RuntimeSampler(Sampler):
    """Samples with settings held in scalar tensors.

    Args:
        temperature: float32 scalar > 0; values <= 0 are treated as greedy decoding.
        top_k: int32 scalar; candidates are the `top_k` most likely tokens (<= 0: all).
        top_p: float32 scalar; nucleus mass in (0, 1] (>= 1: no cut).

    Example:
    >>> s = RuntimeSampler(tf.constant(1.0), tf.constant(1), tf.constant(1.0))
    >>> s(tf.constant([[0.0, 3.0, 1.0]]), seed=tf.constant([0, 0])).numpy().tolist()
    [1]
    """

    name = "runtime"

    def __init__(self, temperature: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor):
        # The base class validates Python numbers; these are tensors, checked in the graph.
        self.temperature = tf.cast(temperature, tf.float32)
        self.top_k = tf.cast(top_k, tf.int32)
        self.top_p = tf.cast(top_p, tf.float32)

    def __call__(self, logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(logits, tf.float32)
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
        vocabulary = tf.shape(logits)[-1]
        sorted_logits, sorted_ids = tf.math.top_k(logits, k=vocabulary, sorted=True)
        sorted_logits = sorted_logits / tf.maximum(self.temperature, 1e-6)
        rank = tf.range(vocabulary)[None, :]
        k = tf.where(self.top_k > 0, tf.minimum(self.top_k, vocabulary), vocabulary)
        mass_before = tf.math.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1, exclusive=True)
        # The most likely token always stays a candidate.
        kept = (rank < k) & ((mass_before < self.top_p) | (rank == 0))
        choice = tf.random.stateless_categorical(
            tf.where(kept, sorted_logits, tf.float32.min), 1, seed=seed, dtype=tf.int32
        )
        sampled = tf.gather(sorted_ids, choice, batch_dims=1)[:, 0]
        return tf.where(self.temperature > 0, sampled, greedy)

    def get_config(self):
        return {}

    @property
    def cache_key(self) -> tuple:
        return (type(self).__name__, id(self))
