"""Reads PyTorch `.bin`/`.pt` state dicts (the zip format of `torch.save`) without torch.

A PyTorch checkpoint is a zip archive holding `data.pkl` (a pickle of the state dict whose
tensors point at storages by key) and one raw little-endian file per storage under `data/`.
This module unpickles `data.pkl` with an allow-list of the handful of globals a state dict uses,
so loading a checkpoint never runs arbitrary code.

The file is untrusted, so memory is bounded too. Unpickling only records, for each tensor, its
storage key, offset, shape and strides. Every tensor is then checked against its storage (the
element count the pickle declares, which must equal the bytes the archive holds for it) before
any storage is read: a view must lie inside its storage and its elements must not overlap
(broadcast stride-0 views are refused rather than expanded), so no tensor is larger than its
storage. Storages are read with a bounded read (a compressed entry cannot inflate beyond the
size it declares), once each, and tensors come back as read-only views of them: the arrays of
a checkpoint take no more memory than its storages, however many tensors share one.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickle
import zipfile
import zlib

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
# A state dict's pickle holds ~150 bytes per tensor; anything near this is not a state dict
# (and would be a decompression bomb if its zip entry is compressed).
MAX_PICKLE_BYTES = 64 * 2**20
# numpy's own limit is 64 dimensions; no checkpoint tensor comes close.
MAX_DIMENSIONS = 32


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widens raw bfloat16 values (given as uint16 bit patterns) to float32, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class _StorageType:
    """Stands in for `torch.FloatStorage` etc. inside the pickle: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        """Bytes per element in the archive (bfloat16: 2, though it is widened when read)."""
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    """A storage as the pickle names it; its bytes are read only after every check passed."""

    key: str
    storage_type: _StorageType
    numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it: a strided view of a storage, not yet built."""

    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
    """`torch._utils._rebuild_tensor_v2`: records the view; `_check_view` validates it later."""
    # torch.Size pickles as a tuple; a list holds the same (bounded by the pickle's size).
    size = tuple(size) if isinstance(size, list) else size
    stride = tuple(stride) if isinstance(stride, list) else stride
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused_args):
    """`torch._utils._rebuild_parameter`: an `nn.Parameter` is just its data here."""
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict with only the globals a state dict needs; storages and tensors
    come out as references (`_StorageRef`, `_TensorRef`), nothing is read or allocated."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path
        self._storages: dict[str, _StorageRef] = {}

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
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"{self._path}: unsupported persistent id {pid!r:.200}.")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"{self._path}: unsupported storage type {storage_type!r:.100}.")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise ValueError(
                f"{self._path}: bad storage reference (key {key!r:.100}, element count "
                f"{numel!r:.100}); expected a string key and a non-negative integer count."
            )
        storage = _StorageRef(key, storage_type, numel)
        known = self._storages.setdefault(key, storage)
        if (known.storage_type.name, known.numel) != (storage_type.name, numel):
            raise ValueError(
                f"{self._path}: storage {key!r} is declared twice, as {known.numel} "
                f"{known.storage_type.name} elements and as {numel} {storage_type.name} elements."
            )
        return known


def _check_view(path: str, name: str, tensor: _TensorRef) -> None:
    """Refuses a tensor that is not a non-overlapping view inside its storage.

    Runs before anything is read or allocated, so a crafted shape or stride costs nothing.
    """
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    where = f"{path}: tensor {name!r}"
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise ValueError(f"{where} has a malformed shape {size!r:.100} or strides {stride!r:.100}.")
    if len(size) > MAX_DIMENSIONS:
        raise ValueError(f"{where} has {len(size)} dimensions; at most {MAX_DIMENSIONS} allowed.")
    if not all(_is_int(n) and n >= 0 for n in size):
        raise ValueError(f"{where} has shape {size}; dimensions must be non-negative integers.")
    if not all(_is_int(s) and s >= 0 for s in stride) or not _is_int(offset) or offset < 0:
        raise ValueError(
            f"{where} has strides {stride} and storage offset {offset!r}; both must be "
            "non-negative integers."
        )
    numel = math.prod(size)
    if numel == 0:
        if max(size, default=0) >= 2**31:
            raise ValueError(f"{where} is empty but has an absurd shape {size}.")
        return
    available = tensor.storage.numel
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= available:
        raise ValueError(
            f"Corrupt checkpoint: {where} of shape {size} (offset {offset}, strides {stride}) "
            f"reaches past its storage of {available} elements."
        )
    # Non-overlapping: going through the dimensions by increasing stride, each stride must
    # step past everything the smaller ones span. A broadcast (stride 0) dimension fails this;
    # expanding it would make a tensor larger than its storage (a 522-byte file became 1 GiB).
    span = 0
    for n, s in sorted(((n, s) for n, s in zip(size, stride) if n > 1), key=lambda p: p[1]):
        if s <= span:
            raise ValueError(
                f"{where} of shape {size} has strides {stride} whose elements overlap "
                "(a broadcast or stride-0 view); such views are not supported, since expanding "
                f"them would hold {numel} elements taken from a storage of {available}. Save "
                "a contiguous copy (`tensor.contiguous()` or `.clone()`)."
            )
        span += (n - 1) * s


def _read_storage(
    archive: zipfile.ZipFile, prefix: str, path: str, name: str, storage: _StorageRef
) -> np.ndarray:
    """Reads one storage, refusing any whose archive entry differs from its declared size."""
    entry = f"{prefix}data/{storage.key}"
    expected = storage.numel * storage.storage_type.itemsize
    try:
        info = archive.getinfo(entry)
    except KeyError:
        raise ValueError(
            f"{path}: tensor {name!r} uses storage {storage.key!r}, which the archive lacks "
            f"({entry})."
        ) from None
    if info.file_size != expected:
        raise ValueError(
            f"{path}: tensor {name!r} uses storage {storage.key!r}, declared as "
            f"{storage.numel} {storage.storage_type.name} elements ({expected} bytes), but the "
            f"archive entry holds {info.file_size} bytes."
        )
    # A bounded read: zipfile also stops at the entry's declared size, so a compressed entry
    # cannot inflate past it.
    with archive.open(info) as file:
        raw = file.read(expected)
    if len(raw) != expected:
        raise ValueError(
            f"{path}: storage {storage.key!r} of tensor {name!r} is truncated ({len(raw)} of "
            f"{expected} bytes)."
        )
    if storage.storage_type.dtype == "bfloat16":
        return bfloat16_bits_to_float32(np.frombuffer(raw, dtype="<u2"))
    return np.frombuffer(raw, dtype=np.dtype(storage.storage_type.dtype).newbyteorder("<"))


def _view(storage: np.ndarray, tensor: _TensorRef) -> np.ndarray:
    """The tensor as a read-only view of its (checked) storage."""
    if math.prod(tensor.size) == 0:
        return np.zeros(tensor.size, storage.dtype)
    if not tensor.size:
        view = storage[tensor.offset : tensor.offset + 1].reshape(())
    else:
        view = np.lib.stride_tricks.as_strided(
            storage[tensor.offset :],
            shape=tensor.size,
            strides=tuple(s * storage.dtype.itemsize for s in tensor.stride),
            writeable=False,
        )
    view.flags.writeable = False
    return view


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict saved with `torch.save` (zip format, PyTorch >= 1.6).

    Args:
        path: a `pytorch_model.bin` (or any `torch.save`d dict of tensors).

    Returns:
        `{name: numpy array}`; bfloat16 tensors are widened to float32. The arrays are
        read-only views of the checkpoint's storages (tensors that share a storage, like tied
        weights, share memory); copy one (`np.array(x)`) to modify it.

    Raises:
        ValueError: the file is not a zip-format checkpoint, is big-endian, its pickle holds
            anything but tensors in (ordered) dicts, or a tensor does not fit its storage
            (out of bounds, negative or overlapping strides, broadcast views, a storage whose
            size differs from the one declared). Raised before any storage is read.

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
    try:
        return _load(path)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        # A damaged archive (bad CRC, truncated or invalid compressed data) is a data error.
        raise ValueError(f"{path} is a corrupt zip archive: {error}") from None


def _load(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}.")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path} was saved on a big-endian machine; this is not supported.")
        info = archive.getinfo(pickles[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise ValueError(
                f"{path}: its data.pkl is {info.file_size} bytes; a state dict's is far below "
                f"the {MAX_PICKLE_BYTES}-byte limit."
            )
        with archive.open(info) as file:
            pickled = file.read(MAX_PICKLE_BYTES)
        try:
            state = _StateDictUnpickler(io.BytesIO(pickled), path).load()
        except (pickle.UnpicklingError, EOFError, TypeError, IndexError, KeyError) as error:
            # A malformed pickle (truncated, wrong argument counts for the allowed globals).
            raise ValueError(
                f"{path}: data.pkl is not a valid state dict pickle: {error}"
            ) from None
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict.")
        for name, value in state.items():
            if not isinstance(value, _TensorRef):
                kind = "storage" if isinstance(value, _StorageRef) else type(value).__name__
                raise ValueError(
                    f"{path}: entry {name!r} is a {kind}, not a tensor; expected a flat state dict."
                )
            if not isinstance(value.storage, _StorageRef):
                raise ValueError(f"{path}: tensor {name!r} is not built on a storage.")
            _check_view(path, name, value)
        storages: dict[str, np.ndarray] = {}
        tensors = {}
        for name, value in state.items():
            key = value.storage.key
            if key not in storages:
                storages[key] = _read_storage(archive, prefix, path, name, value.storage)
            tensors[name] = _view(storages[key], value)
    return tensors
