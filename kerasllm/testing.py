"""Shared helpers for kerasllm's tests (and for users testing their own presets).

Tiny configurations of each backbone family and random inputs of the right shape, so every test
file builds models the same way.
"""

from __future__ import annotations

import numpy as np

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=32,
    dropout=0.0,
)

# Variants that between them exercise every architectural switch.
TINY_VARIANTS = {
    "learned_postnorm": dict(position_embedding="learned", norm_first=False),
    "sinusoidal_scaled": dict(
        position_embedding="sinusoidal", embedding_scale=True, embedding_norm=False
    ),
    "rotary_gqa_swiglu": dict(
        position_embedding="rotary",
        norm_first=True,
        norm_type="rms",
        num_key_value_heads=2,
        activation="swiglu",
        use_bias=False,
    ),
    "relative_t5": dict(
        position_embedding="relative",
        norm_first=True,
        norm_type="rms",
        use_bias=False,
        attention_scale=1.0,
        relative_num_buckets=8,
        relative_max_distance=16,
        activation="relu",
    ),
}


def tiny_config(variant: str = "learned_postnorm", **overrides) -> dict:
    """A tiny backbone config of the given variant (see `TINY_VARIANTS`)."""
    return {**TINY, **TINY_VARIANTS[variant], **overrides}


def random_ids(batch: int, length: int, vocabulary_size: int = 97, seed: int = 0, low: int = 1):
    """Random token ids in [low, vocabulary_size), int32."""
    rng = np.random.default_rng(seed)
    return rng.integers(low, vocabulary_size, size=(batch, length)).astype("int32")


def right_padding_mask(lengths, length: int):
    """(B, length) int32 mask with the first `lengths[i]` positions of row i set."""
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")


def encoder_inputs(batch=2, length=8, lengths=None, seed=0, vocabulary_size=97):
    ids = random_ids(batch, length, vocabulary_size, seed)
    lengths = [length] * batch if lengths is None else lengths
    return {
        "token_ids": ids,
        "padding_mask": right_padding_mask(lengths, length),
        "segment_ids": np.zeros_like(ids),
    }


def decoder_inputs(batch=2, length=8, lengths=None, seed=0, vocabulary_size=97):
    inputs = encoder_inputs(batch, length, lengths, seed, vocabulary_size)
    inputs.pop("segment_ids")
    return inputs


def seq2seq_inputs(
    batch=2, source_length=9, target_length=7, source_lengths=None, target_lengths=None, seed=0
):
    source = decoder_inputs(batch, source_length, source_lengths, seed)
    target = decoder_inputs(batch, target_length, target_lengths, seed + 1)
    return {
        "encoder_token_ids": source["token_ids"],
        "encoder_padding_mask": source["padding_mask"],
        "decoder_token_ids": target["token_ids"],
        "decoder_padding_mask": target["padding_mask"],
    }


def interrupt_on_loop(make_train_loop, call: int = 2):
    """Wraps a `Trainer._make_train_loop` so that its `call`-th training loop raises
    `KeyboardInterrupt`, as Ctrl-C (or SIGTERM in the CLIs) would between two loops.

    Example: `monkeypatch.setattr(trainer, "_make_train_loop",
    interrupt_on_loop(trainer._make_train_loop))`.
    """

    def make():
        train_loop, calls = make_train_loop(), []

        def interrupting_loop(*args):
            calls.append(1)
            if len(calls) == call:
                raise KeyboardInterrupt
            return train_loop(*args)

        return interrupting_loop

    return make
