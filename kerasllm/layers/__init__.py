"""Subclassed Keras layers that every kerasllm model is built from."""

from kerasllm.layers import masking
from kerasllm.layers.attention import MultiHeadAttention
from kerasllm.layers.blocks import DecoderBlock, EncoderBlock, TransformerBlock
from kerasllm.layers.embeddings import (
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEmbedding,
    TokenEmbedding,
)
from kerasllm.layers.feed_forward import FeedForward
from kerasllm.layers.normalization import RMSNorm

__all__ = [
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "MultiHeadAttention",
    "PositionEmbedding",
    "RMSNorm",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionEmbedding",
    "TokenEmbedding",
    "TransformerBlock",
    "masking",
]
