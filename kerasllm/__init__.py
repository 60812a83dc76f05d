"""kerasllm: a Keras 3 / TensorFlow model zoo for transformer language models.

Every public subpackage is an attribute of the package, imported on first use so that
`import kerasllm` itself stays light (it does not import TensorFlow):

>>> import kerasllm
>>> kerasllm.zoo.get("bert_tiny", weights=None).count_params() > 0
True
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# TensorFlow's C++ log lines ("failed call to cuInit" on every machine without a GPU, cudart
# and oneDNN notices) read like failures: hidden unless the user chose a level
# (TF_CPP_MIN_LOG_LEVEL=0 shows them all). Set before TensorFlow loads, which reads it once.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

#: The public subpackages and modules, loaded lazily by `__getattr__`.
_SUBMODULES = (
    "bundle",
    "cli",
    "compression",
    "convert",
    "data",
    "datasets",
    "export",
    "generation",
    "hardware",
    "layers",
    "metrics",
    "models",
    "preprocessors",
    "testing",
    "text_to_text",
    "tokenizers",
    "training",
    "tuning",
    "utils",
    "zoo",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
