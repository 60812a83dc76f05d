"""Reading and writing checkpoint tensor files as numpy arrays: safetensors and PyTorch `.bin`.

Hugging Face checkpoints store weights either as `model.safetensors` or as a pickled PyTorch
state dict (`pytorch_model.bin`); both come back here as `{name: np.ndarray}`, with no torch.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from kerasllm.convert.torch_pickle import bfloat16_bits_to_float32, load_torch_state_dict
from kerasllm.utils.files import atomic_path

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".bin", ".pt", ".pth")


def read_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads every tensor of a `.safetensors` file or a PyTorch `.bin`/`.pt`/`.pth` state dict.

    bfloat16 tensors (which numpy cannot represent) are widened to float32 exactly.

    Args:
        path: the tensor file.

    Returns:
        `{tensor name: numpy array}`.

    Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> _ = write_safetensors({"w": np.eye(2, dtype="float32")}, path)
    >>> read_tensors(path)["w"].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Tensor file {path} does not exist.")
    if path.suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(path)
    if path.suffix in TORCH_SUFFIXES:
        return load_torch_state_dict(path)
    raise ValueError(
        f"Unsupported tensor file {path.name!r}: expected a {SAFETENSORS_SUFFIX} file or a "
        f"PyTorch state dict ({', '.join(TORCH_SUFFIXES)})."
    )


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    header = _safetensors_header(path)
    if not any(info["dtype"] == "BF16" for info in header.values()):
        return load_file(path)
    # safetensors.numpy cannot build bfloat16 arrays: read those tensors' bytes directly.
    tensors = {}
    with open(path, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        data = memoryview(file.read())[header_size:]
    for name, info in header.items():
        start, end = _checked_offsets(path, name, info, len(data))
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data[start:end], dtype="<u2").reshape(info["shape"])
            tensors[name] = bfloat16_bits_to_float32(bits)
        else:
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            array = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"])
            tensors[name] = array.copy()
    return tensors


_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
# The safetensors format's own limit on the JSON header (the Rust reader refuses larger ones).
MAX_SAFETENSORS_HEADER = 100_000_000


def _checked_offsets(path: Path, name: str, info, data_size: int) -> tuple[int, int]:
    """A tensor's `data_offsets`, checked against its dtype, shape and the data present."""
    if not isinstance(info, dict) or info.get("dtype") not in _SAFETENSORS_DTYPES:
        dtype = info.get("dtype") if isinstance(info, dict) else info
        raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r:.50}.")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (
        isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
    ):
        raise ValueError(
            f"{path}: tensor {name!r} has a malformed shape {shape!r:.100} or data_offsets "
            f"{offsets!r:.100}."
        )
    start, end = offsets
    expected = math.prod(shape) * np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).itemsize
    if not 0 <= start <= end <= data_size or end - start != expected:
        raise ValueError(
            f"{path}: tensor {name!r} of shape {tuple(shape)} ({info['dtype']}, {expected} "
            f"bytes) has data_offsets {offsets}, which do not fit the {data_size} bytes of data."
        )
    return start, end


def _safetensors_header(path: Path) -> dict:
    """The safetensors JSON header: `{name: {"dtype", "shape", "data_offsets"}}`.

    The header size comes from the file, so it is checked against the file's length (and the
    format's limit) before it is read: a crafted size must not make us allocate gigabytes.
    """
    file_size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path} is not a safetensors file (too short).")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > min(file_size - 8, MAX_SAFETENSORS_HEADER):
            raise ValueError(
                f"{path} is not a safetensors file: its header claims {header_size} bytes, but "
                f"the file has {file_size - 8} after the size field (and headers are limited "
                f"to {MAX_SAFETENSORS_HEADER})."
            )
        try:
            header = json.loads(file.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a safetensors file: bad header ({error}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: its header is not a JSON object.")
    header.pop("__metadata__", None)
    for name, info in header.items():
        if not isinstance(info, dict) or "dtype" not in info:
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry.")
    return header


def write_safetensors(
    tensors: dict[str, np.ndarray],
    path: str | os.PathLike,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Writes `{name: array}` to a safetensors file (contiguous copies, names sorted).

    Args:
        tensors: the arrays to store.
        path: the output file; parent folders are created.
        metadata: string key/values for the header (Hugging Face writes `{"format": "pt"}`).

    Returns:
        The path written.
    """
    path = Path(path)
    # Written beside the destination and renamed over it: a crash leaves no half-written file.
    with atomic_path(path) as temporary:
        save_file(
            {name: np.ascontiguousarray(value) for name, value in sorted(tensors.items())},
            temporary,
            metadata=metadata,
        )
    return path
