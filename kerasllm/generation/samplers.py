"""Next-token samplers: greedy, random (temperature), top-k, top-p, and the beam-search config.

A sampler maps float32 next-token logits (B, V) to token ids (B,). Random samplers are
stateless: `seed` is a (2,) int tensor, which the decoding loop builds from the caller's seed
and the decoding step, so the same seed gives the same tokens, eagerly or inside XLA.

`BeamSampler` only carries the beam-search settings; the search itself needs the whole decoding
state and lives in `kerasllm.generation.decoding`.

Why not `keras_hub.samplers`: they own the decoding loop (`sampler(next, prompt, cache, ...)`
over a full (B, max_length) buffer), draw from a stateful `SeedGenerator` (reproducible per
call, not per step inside an exported graph), and their beam search has neither length
penalty nor frozen finished beams. The token-choice rules below are the same as theirs.

Example:
>>> import tensorflow as tf
>>> logits = tf.constant([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
>>> get_sampler("greedy")(logits, seed=tf.constant([0, 0])).numpy().tolist()
[1, 0]
>>> TopKSampler(k=1)(logits, seed=tf.constant([7, 3])).numpy().tolist()
[1, 0]
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kerasllm.utils.validation import closest, is_finite_real


class Sampler:
    """Base class: turns next-token logits into token ids.

    Subclasses implement `_sample(logits, seed)` on temperature-scaled float32 logits.

    Args:
        temperature: divides the logits before sampling; < 1 sharpens, > 1 flattens.
        no_repeat_ngram_size: if n > 0, the decoding loop never lets a row produce an
            n-gram that already occurs in it (prompt or, for seq2seq, the decoded target
            included), as Hugging Face's `no_repeat_ngram_size`: the cure for the repetition
            loops of greedy and beam decoding with small models. 0: no constraint.
    """

    name = "sampler"
    # Class default: samplers built without the base initializer (`RuntimeSampler`) have none.
    no_repeat_ngram_size = 0

    def __init__(self, temperature: float = 1.0, no_repeat_ngram_size: int = 0):
        if not is_finite_real(temperature) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number; got {temperature!r}.")
        if (
            not isinstance(no_repeat_ngram_size, int)
            or isinstance(no_repeat_ngram_size, bool)
            or no_repeat_ngram_size < 0
        ):
            raise ValueError(
                "`no_repeat_ngram_size` must be a non-negative integer (0: no constraint); "
                f"got {no_repeat_ngram_size!r}."
            )
        self.temperature = float(temperature)
        self.no_repeat_ngram_size = no_repeat_ngram_size

    def __call__(self, logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Returns int32 token ids (B,) for float32 logits (B, V) and a (2,) int seed."""
        logits = tf.cast(logits, tf.float32)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return tf.cast(self._sample(logits, seed), tf.int32)

    def _sample(self, logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, **self._constraints()}

    def _constraints(self) -> dict[str, Any]:
        """Config entries of the decoding constraints, only where set (so that the configs and
        reprs of unconstrained samplers stay as they were)."""
        if self.no_repeat_ngram_size:
            return {"no_repeat_ngram_size": self.no_repeat_ngram_size}
        return {}

    @property
    def cache_key(self) -> tuple:
        """Hashable identity of this sampler's behaviour (compiled loops are keyed by it)."""
        return (type(self).__name__, tuple(sorted(self.get_config().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def first_argmax(logits: tf.Tensor) -> tf.Tensor:
    """Index of the largest logit over the last axis, the first one on ties (`tf.argmax`'s
    result), as int32; a row without a comparable maximum (NaN) gives its last index.

    Written as a max and a min over indices: XLA on CPU compiles `tf.argmax` to a variadic
    (value, index) reduction that runs about 7x slower than these two plain reductions
    (measured 95 -> 14 us per call on (8, 8000) float32 logits, 28 -> 4 us at batch 1).

    Example:
    >>> import tensorflow as tf
    >>> first_argmax(tf.constant([[0.1, 0.7, 0.7], [3.0, 1.0, 2.0]])).numpy()
    array([1, 0], dtype=int32)
    """
    size = tf.shape(logits)[-1]
    best = tf.reduce_max(logits, axis=-1, keepdims=True)
    index = tf.reduce_min(tf.where(logits == best, tf.range(size), size), axis=-1)
    return tf.minimum(index, size - 1)


class GreedySampler(Sampler):
    """Always the most likely token (temperature has no effect).

    Example:
    >>> import tensorflow as tf
    >>> GreedySampler()(tf.constant([[0.1, 0.7, 0.2]]), seed=tf.constant([0, 0])).numpy()
    array([1], dtype=int32)
    """

    name = "greedy"

    def __init__(self, no_repeat_ngram_size: int = 0):
        super().__init__(temperature=1.0, no_repeat_ngram_size=no_repeat_ngram_size)

    def _sample(self, logits, seed):
        return first_argmax(logits)

    def get_config(self):
        return self._constraints()


class RandomSampler(Sampler):
    """Samples from the full softmax distribution of `logits / temperature`.

    Example:
    >>> import tensorflow as tf
    >>> RandomSampler(temperature=0.7)(tf.zeros((2, 5)), seed=tf.constant([1, 2])).shape
    TensorShape([2])
    """

    name = "random"

    def _sample(self, logits, seed):
        return tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)[:, 0]


class TopKSampler(Sampler):
    """Samples among the `k` most likely tokens, in proportion to their probabilities.

    Args:
        k: number of candidate tokens per step.
        temperature: see `Sampler`.

    Example:
    >>> import tensorflow as tf
    >>> logits = tf.constant([[5.0, 4.0, -9.0, -9.0]])
    >>> int(TopKSampler(k=2)(logits, seed=tf.constant([0, 1]))[0]) in (0, 1)
    True
    """

    name = "top_k"

    def __init__(self, k: int = 5, temperature: float = 1.0, no_repeat_ngram_size: int = 0):
        super().__init__(temperature, no_repeat_ngram_size)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"`k` must be a positive integer; got {k!r}.")
        self.k = k

    def _sample(self, logits, seed):
        k = min(self.k, logits.shape[-1]) if logits.shape[-1] is not None else self.k
        top_logits, top_ids = tf.math.top_k(logits, k=k, sorted=False)
        choice = tf.random.stateless_categorical(top_logits, 1, seed=seed, dtype=tf.int32)
        return tf.gather(top_ids, choice, batch_dims=1)[:, 0]

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class TopPSampler(Sampler):
    """Nucleus sampling: samples among the smallest set of tokens whose probability mass
    reaches `p` (the most likely token is always a candidate).

    Args:
        p: probability mass of the candidate set, in (0, 1].
        k: optional cap on the candidates considered before the nucleus cut; sorting the
            whole vocabulary at every step is the costly part, so a cap (e.g. 64) speeds
            sampling up when the nucleus is known to be small.
        temperature: see `Sampler`.

    Example:
    >>> import tensorflow as tf
    >>> logits = tf.math.log(tf.constant([[0.6, 0.3, 0.05, 0.05]]))
    >>> int(TopPSampler(p=0.5)(logits, seed=tf.constant([0, 1]))[0])
    0
    """

    name = "top_p"

    def __init__(
        self,
        p: float = 0.9,
        k: int | None = None,
        temperature: float = 1.0,
        no_repeat_ngram_size: int = 0,
    ):
        super().__init__(temperature, no_repeat_ngram_size)
        if not is_finite_real(p) or not 0.0 < p <= 1.0:
            raise ValueError(f"`p` must be in (0, 1]; got {p!r}.")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"`k` must be None or a positive integer; got {k!r}.")
        self.p = float(p)
        self.k = k

    def _sample(self, logits, seed):
        vocabulary = logits.shape[-1] if logits.shape[-1] is not None else tf.shape(logits)[-1]
        k = vocabulary if self.k is None else min(self.k, vocabulary)
        sorted_logits, sorted_ids = tf.math.top_k(logits, k=k, sorted=True)
        probabilities = tf.nn.softmax(sorted_logits, axis=-1)
        # Keep a token while the mass before it is still below p.
        mass_before = tf.math.cumsum(probabilities, axis=-1, exclusive=True)
        kept = tf.where(mass_before < self.p, sorted_logits, tf.float32.min)
        choice = tf.random.stateless_categorical(kept, 1, seed=seed, dtype=tf.int32)
        return tf.gather(sorted_ids, choice, batch_dims=1)[:, 0]

    def get_config(self):
        return {**super().get_config(), "p": self.p, "k": self.k}


class BeamSampler(Sampler):
    """Beam search settings (the search runs in `kerasllm.generation.decoding`).

    Hypotheses are ranked by `sum of token log-probabilities / length ** length_penalty`,
    where length counts the generated tokens (stop token included). A hypothesis that emits
    a stop token is frozen with its score and keeps its beam slot while it stays among the
    `num_beams` best; the search ends when every beam of every row is finished. With one
    beam this is exactly greedy decoding.

    Args:
        num_beams: hypotheses kept per row.
        length_penalty: exponent of the length normalization; 0 ranks by raw
            log-probability (favours short outputs), 1 by mean log-probability per token.
        return_all_beams: `generate` returns every beam, best first, with its score,
            instead of only the best one.
        no_repeat_ngram_size: see `Sampler`; applies to every beam.

    Example:
    >>> BeamSampler(num_beams=4, length_penalty=0.6)
    BeamSampler(num_beams=4, length_penalty=0.6, return_all_beams=False)
    """

    name = "beam"

    def __init__(
        self,
        num_beams: int = 4,
        length_penalty: float = 1.0,
        return_all_beams: bool = False,
        no_repeat_ngram_size: int = 0,
    ):
        super().__init__(temperature=1.0, no_repeat_ngram_size=no_repeat_ngram_size)
        if not isinstance(num_beams, int) or isinstance(num_beams, bool) or num_beams < 1:
            raise ValueError(f"`num_beams` must be a positive integer; got {num_beams!r}.")
        if not is_finite_real(length_penalty):
            raise ValueError(f"`length_penalty` must be a finite number; got {length_penalty!r}.")
        if not isinstance(return_all_beams, bool):
            raise ValueError(f"`return_all_beams` must be True or False; got {return_all_beams!r}.")
        self.num_beams = num_beams
        self.length_penalty = float(length_penalty)
        self.return_all_beams = bool(return_all_beams)

    def _sample(self, logits, seed):
        raise TypeError(
            "BeamSampler does not choose tokens row by row; pass it to `generate`, which runs "
            "the beam search."
        )

    def get_config(self):
        return {
            "num_beams": self.num_beams,
            "length_penalty": self.length_penalty,
            "return_all_beams": self.return_all_beams,
            **self._constraints(),
        }


SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (GreedySampler, RandomSampler, TopKSampler, TopPSampler, BeamSampler)
}


def get_sampler(sampler: str | Sampler) -> Sampler:
    """Returns a `Sampler` from a name ("greedy", "random", "top_k", "top_p", "beam", built with
    default settings) or an instance (returned as is).

    Example:
    >>> get_sampler("top_k")
    TopKSampler(temperature=1.0, k=5)
    """
    if isinstance(sampler, Sampler):
        return sampler
    if isinstance(sampler, str) and sampler in SAMPLERS:
        return SAMPLERS[sampler]()
    hint = closest(sampler, SAMPLERS) if isinstance(sampler, str) else ""
    raise ValueError(
        f"Unknown sampler {sampler!r}.{hint} Pass one of {sorted(SAMPLERS)} or a "
        "`kerasllm.generation.Sampler` instance."
    )
