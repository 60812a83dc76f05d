"""Text generation: greedy, random, top-k, top-p sampling and beam search over the KV cache.

`generate(model, inputs, ...)` (also `CausalLM.generate` / `Seq2SeqLM.generate`) takes strings
or token ids and runs one XLA-compiled decoding loop per shape bucket. `decode_causal` and
`decode_seq2seq` are the graph-level loops behind it, usable inside any `tf.function` (the
SavedModel export calls them from its serving signatures).

Example:
>>> from kerasllm.models import CausalLM, Decoder
>>> from kerasllm.generation import TopKSampler, generate
>>> model = CausalLM(Decoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
...                          intermediate_dim=16, max_sequence_length=32))
>>> a = generate(model, [[5, 6, 7]], max_new_tokens=4, sampler=TopKSampler(k=5), seed=1)
>>> b = generate(model, [[5, 6, 7]], max_new_tokens=4, sampler=TopKSampler(k=5), seed=1)
>>> bool((a == b).all())
True
"""

from kerasllm.generation.decoding import decode_causal, decode_seq2seq
from kerasllm.generation.generate import generate, trace_count
from kerasllm.generation.samplers import (
    SAMPLERS,
    BeamSampler,
    GreedySampler,
    RandomSampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)

__all__ = [
    "SAMPLERS",
    "BeamSampler",
    "GreedySampler",
    "RandomSampler",
    "Sampler",
    "TopKSampler",
    "TopPSampler",
    "decode_causal",
    "decode_seq2seq",
    "generate",
    "get_sampler",
    "trace_count",
]
