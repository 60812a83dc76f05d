"""Depth growth: start a deeper model from a trained shallower one, computing the same function.

Layers the smaller model has are copied by variable path; the layers only the deeper model has
(`encoder_layer_{i}` / `decoder_layer_{i}` above the smaller stack) have their residual output
projections zeroed, so with pre-layer-norm blocks each new layer starts as the identity and the
grown model translates exactly as the small one did until training moves it. With post-norm
blocks a zeroed branch still renormalizes its input, so growth is refused there.

Example:
>>> from kerasllm import zoo
>>> small = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None, vocabulary_size=50,
...                 num_decoder_layers=1, norm_first=True)
>>> big = zoo.get("transformer_tiny", task="seq2seq_lm", weights=None, vocabulary_size=50,
...               num_decoder_layers=2, norm_first=True)
>>> grow_depth(big, small)
['decoder_layer_1']
"""

from __future__ import annotations

import re

import keras

from kerasllm.training.checkpointing import weights_by_path

# The projections that write into the residual stream; zero, they make a pre-norm block the
# identity (self- and cross-attention output, feed-forward output).
_RESIDUAL_OUTPUTS = re.compile(r"/(attention_output|feed_forward/output)/(kernel|bias)$")
_STACKED_LAYER = re.compile(r"^((?:encoder|decoder)_layer)_(\d+)/")


def grow_depth(model: keras.Model, source: keras.Model) -> list[str]:
    """Initializes `model` from the shallower `source` of the same family, as the identity on top.

    Args:
        model: the deeper model (built); its extra encoder/decoder layers must sit above the
            ones `source` has, with every other weight of the same path and shape.
        source: the trained model to grow from.

    Returns:
        The names of the layers that start as the identity, e.g. `["decoder_layer_2"]`.

    Raises:
        ValueError: if the models are not pre-norm, if `source` has a weight `model` lacks,
            if shapes differ, or if a weight of `model` outside the new layers has no source.
    """
    for name, m in (("model", model), ("source", source)):
        backbone = getattr(m, "backbone", m)
        if not backbone.get_config().get("norm_first", False):
            raise ValueError(
                f"Depth growth needs pre-norm (norm_first=True) blocks; the {name} is post-norm, "
                "where a new block with zeroed outputs is not the identity."
            )
    target, given = weights_by_path(model), weights_by_path(source)
    missing = sorted(set(given) - set(target))
    if missing:
        raise ValueError(
            f"The grown model lacks {len(missing)} weight(s) of the source, e.g. {missing[0]!r}: "
            "growth only adds layers on top of a stack."
        )
    for path in given:
        if tuple(given[path].shape) != tuple(target[path].shape):
            raise ValueError(
                f"{path}: shape {tuple(given[path].shape)} in the source, "
                f"{tuple(target[path].shape)} in the grown model; growth changes depth only."
            )
    new_layers: set[tuple[str, int]] = set()
    for path in target.keys() - given.keys():
        layer = _STACKED_LAYER.match(path)
        if layer is None:
            raise ValueError(f"{path} is neither in the source nor in a new encoder/decoder layer.")
        # Backbones name their stacks 0..n-1, so what the source lacks sits on top.
        new_layers.add((layer.group(1), int(layer.group(2))))
    for path, variable in target.items():
        if path in given:
            variable.assign(given[path])
        elif _RESIDUAL_OUTPUTS.search(path):
            variable.assign(keras.ops.zeros_like(variable))
    return [f"{stack}_{index}" for stack, index in sorted(new_layers)]
