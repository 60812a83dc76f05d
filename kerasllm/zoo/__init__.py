"""The model zoo: `kerasllm.zoo.get("bert_small")` builds a preset.

Presets are architecture-only (random weights) or carry weights and a tokenizer
(`minilm_l6`, `translate_en_fr`); `list()` says which. `get` also takes a preset directory,
which `save_preset` writes (a `kerasllm.bundle`).

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
    read_preset_directory,
    read_preset_file,
    register,
    register_loader,
    save_preset,
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
    "read_preset_directory",
    "read_preset_file",
    "register",
    "register_loader",
    "save_preset",
    "save_preset_file",
]
