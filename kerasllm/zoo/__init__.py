"""The model zoo: `kerasllm.zoo.get("bert_small")` builds a preset.

Example:
>>> from kerasllm import zoo
>>> backbone = zoo.get("bert_tiny")
>>> backbone.count_params()
4385920
"""

from kerasllm.zoo import presets as _presets  # noqa: F401  (registers the built-in presets)
from kerasllm.zoo import pretrained as _pretrained  # noqa: F401  (presets with real weights)
from kerasllm.zoo.registry import (
    FAMILIES,
    TASKS,
    Preset,
    get,
    get_loader,
    get_preset,
    get_tokenizer,
    list,
    load_preset_file,
    loaders,
    models_dir,
    num_params,
    read_preset_file,
    register,
    register_loader,
    save_preset_file,
)

__all__ = [
    "FAMILIES",
    "TASKS",
    "Preset",
    "get",
    "get_loader",
    "get_preset",
    "get_tokenizer",
    "list",
    "load_preset_file",
    "loaders",
    "models_dir",
    "num_params",
    "read_preset_file",
    "register",
    "register_loader",
    "save_preset_file",
]
