"""Attention-mask helpers shared by every block and backbone.

Masks are boolean tensors of shape (batch, query_length, key_length); True means "may attend".
"""

from __future__ import annotations

from keras import ops


def causal_mask(query_length, key_length, query_offset=0):
    """Boolean (1, T, S) mask that lets query `i` see keys `0..query_offset + i`.

    `query_offset` is the absolute position of the first query, which is the cache index when
    decoding incrementally with a cache of `key_length` slots.
    """
    rows = ops.arange(query_length, dtype="int32")[:, None] + ops.cast(query_offset, "int32")
    cols = ops.arange(key_length, dtype="int32")[None, :]
    return ops.expand_dims(cols <= rows, 0)


def padding_to_attention_mask(padding_mask, query_length=None):
    """Turns a (B, S) key padding mask into a (B, 1 or T, S) boolean attention mask."""
    mask = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
    if query_length is not None:
        mask = ops.repeat(mask, query_length, axis=1)
    return mask


def merge_masks(*masks):
    """Logical AND of any number of broadcastable boolean masks; `None` entries are skipped."""
    result = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        result = mask if result is None else ops.logical_and(result, mask)
    return result
