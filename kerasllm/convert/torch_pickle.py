"""Reads PyTorch `.bin`/`.pt` state dicts (the zip format of `torch.save`) without torch.

A PyTorch checkpoint is a zip archive holding `data.pkl` (a pickle of the state dict whose
tensors point at storages by key) and one raw little-endian file per storage under `data/`.
This module unpickles `data.pkl` with an allow-list of the handful of globals a state dict uses,
so loading a checkpoint never runs arbitrary code, and rebuilds each tensor as a numpy array
from its storage, offset, shape and strides.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile

import numpy as np

# Storage classes (as pickled by torch.save) -> numpy dtype. bfloat16 is read as uint16 bits and
# widened to float32, since numpy has no bfloat16.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widens raw bfloat16 values (given as uint16 bit patterns) to float32, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class _StorageType:
    """Stands in for `torch.FloatStorage` etc. inside the pickle: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
    """`torch._utils._rebuild_tensor_v2`: a strided view of a storage, copied to an array."""
    size, stride = tuple(size), tuple(stride)
    if 0 in size:
        return np.zeros(size, storage.dtype)
    # as_strided does no bounds checking: refuse views that reach past their storage.
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if storage_offset < 0 or min(stride, default=0) < 0 or last >= len(storage):
        raise ValueError(
            f"Corrupt checkpoint: a tensor of shape {size} (offset {storage_offset}, strides "
            f"{stride}) reaches past its storage of {len(storage)} elements."
        )
    if not size:
        return np.array(storage[storage_offset])
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=size,
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused_args):
    """`torch._utils._rebuild_parameter`: an `nn.Parameter` is just its data here."""
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict with only the globals a state dict needs, reading storages
    from the archive as they are referenced."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._path = path
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise ValueError(
            f"{self._path} is not a plain PyTorch state dict: its pickle refers to "
            f"{module}.{name}, which a tensor checkpoint never needs (refusing to run it). "
            "Save the model's `state_dict()` or use safetensors."
        )

    def persistent_load(self, pid):
        # torch.save writes ('storage', storage_type, key, location, numel).
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise ValueError(f"{self._path}: unsupported persistent id {pid!r}.")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"{self._path}: unsupported storage type {storage_type!r}.")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            if storage_type.dtype == "bfloat16":
                array = bfloat16_bits_to_float32(np.frombuffer(raw, dtype="<u2"))
            else:
                array = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
            self._storages[key] = array
        return self._storages[key]


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict saved with `torch.save` (zip format, PyTorch >= 1.6).

    Args:
        path: a `pytorch_model.bin` (or any `torch.save`d dict of tensors).

    Returns:
        `{name: numpy array}`; bfloat16 tensors are widened to float32.

    Raises:
        ValueError: the file is not a zip-format checkpoint, is big-endian, or its pickle holds
            anything but tensors in (ordered) dicts.

    Example:
    >>> from kerasllm.convert import load_torch_state_dict
    >>> load_torch_state_dict("pytorch_model.bin")  # doctest: +SKIP
    {'embeddings.word_embeddings.weight': array(...), ...}
    """
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a zip-format PyTorch checkpoint (the format of torch.save since "
            "PyTorch 1.6). Re-save it with a recent torch, or convert it to safetensors."
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}.")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path} was saved on a big-endian machine; this is not supported.")
        with archive.open(pickles[0]) as file:
            state = _StateDictUnpickler(file, archive, prefix, path).load()
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict.")
    for name, value in state.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(
                f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor; "
                "expected a flat state dict."
            )
    return dict(state)
