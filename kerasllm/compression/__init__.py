"""Model compression: post-training quantization and pruning of any kerasllm task model or
bundle, and knowledge distillation (`distillation`).

`quantize` turns a model's projections (and, unless kept in float, its token embedding and
tied output projection) into Keras' int8 (weights and per-token activations, W8A8 dynamic) or
int4 (weight-only) layers; the result saves, loads, generates and exports like a float model.
`kerasllm compress quantize` runs it from the command line and writes a report (size, speed,
quality before and after); docs/compression.md has the measured figures.
"""

from kerasllm.compression.distillation import (
    Distillation,
    DistillationModel,
    build_student,
    kl_divergence,
    sequence_level_corpus,
    uniform_layer_map,
)
from kerasllm.compression.pruning import (
    MagnitudePruning,
    PolynomialDecay,
    importance,
    prune_structured,
    sparsity,
    strip,
)
from kerasllm.compression.quantization import (
    MODES,
    describe,
    quantize,
    quantized_layers,
    weights_file_size,
)

__all__ = [
    "MODES",
    "Distillation",
    "DistillationModel",
    "build_student",
    "kl_divergence",
    "sequence_level_corpus",
    "uniform_layer_map",
    "MagnitudePruning",
    "PolynomialDecay",
    "describe",
    "importance",
    "prune_structured",
    "quantize",
    "quantized_layers",
    "sparsity",
    "strip",
    "weights_file_size",
]
