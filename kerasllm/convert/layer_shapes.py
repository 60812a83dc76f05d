"""The one block shape a Hugging Face config can describe, for exporting a backbone whose
`layer_shapes` (written by structured pruning) give each block its own heads and width.

Hugging Face's BERT, GPT-2, Llama and Qwen2 configs hold one head count, one key/value head
count and one feed-forward width for every layer. A backbone whose blocks all have the same
shape exports with that shape (a structurally pruned model usually does: `prune_structured`
removes as many heads and units from every layer); one whose blocks differ cannot be written
as such a checkpoint, and the exporters say so rather than write a config that does not match
the weights.
"""

from __future__ import annotations

from kerasllm.models.backbone import Backbone


def block_shapes(backbone: Backbone) -> list[dict[str, int]]:
    """Each transformer block's attention and feed-forward shape: `num_heads`,
    `num_key_value_heads`, `head_dim` and `intermediate_dim` (`layer_shapes` applied).

    Example:
    >>> from kerasllm.models import Decoder
    >>> decoder = Decoder(vocabulary_size=20, num_layers=2, num_heads=4, hidden_dim=16,
    ...                   intermediate_dim=32, max_sequence_length=8, layer_shapes=[
    ...                       {"num_heads": 2, "intermediate_dim": 24}, {}])
    >>> [s["num_heads"] for s in block_shapes(decoder)], block_shapes(decoder)[0]["head_dim"]
    ([2, 4], 4)
    """
    shapes = []
    for block in backbone.layer_blocks:
        heads = block.num_heads
        shapes.append(
            {
                "num_heads": heads,
                "num_key_value_heads": block.num_key_value_heads or heads,
                "head_dim": block.head_dim or backbone.hidden_dim // heads,
                "intermediate_dim": block.intermediate_dim,
            }
        )
    return shapes


def uniform_block_shape(backbone: Backbone, family: str) -> dict[str, int]:
    """The shape every block of `backbone` shares (see `block_shapes`), which a `family`
    checkpoint's config records once for all layers.

    Raises:
        ValueError: names `layer_shapes` and the values that differ between blocks.

    Example:
    >>> from kerasllm.models import Decoder
    >>> decoder = Decoder(vocabulary_size=20, num_layers=2, num_heads=4, hidden_dim=16,
    ...                   intermediate_dim=32, max_sequence_length=8,
    ...                   layer_shapes=[{"intermediate_dim": 24}] * 2)
    >>> uniform_block_shape(decoder, "Llama")["intermediate_dim"]
    24
    """
    shapes = block_shapes(backbone)
    differing = {
        key: [shape[key] for shape in shapes]
        for key in shapes[0]
        if len({shape[key] for shape in shapes}) > 1
    }
    if differing:
        listed = "; ".join(f"{key} per block: {values}" for key, values in differing.items())
        raise ValueError(
            f"A {family} checkpoint has one head count and feed-forward width for all layers, "
            f"but this model's `layer_shapes` (structured pruning) gives its blocks different "
            f"ones ({listed}). Prune every layer alike (`prune_structured` with fractions, or "
            "a `keep` plan with as many heads and units in each block) to export it."
        )
    return shapes[0]
