"""Reading and writing checkpoint tensor files as numpy arrays: safetensors and PyTorch `.bin`.

Hugging Face checkpoints store weights either as `model.safetensors` or as a pickled PyTorch
state dict (`pytorch_model.bin`); both come back here as `{name: np.ndarray}`, with no torch.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from kerasllm.convert.torch_pickle import bfloat16_bits_to_float32, load_torch_state_dict

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
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data[start:end], dtype="<u2").reshape(info["shape"])
            tensors[name] = bfloat16_bits_to_float32(bits)
        else:
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}.")
            array = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"])
            tensors[name] = array.copy()
    return tensors


_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def _safetensors_header(path: Path) -> dict:
    """The safetensors JSON header: `{name: {"dtype", "shape", "data_offsets"}}`."""
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path} is not a safetensors file (too short).")
        (header_size,) = struct.unpack("<Q", prefix)
        try:
            header = json.loads(file.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a safetensors file: bad header ({error}).") from None
    header.pop("__metadata__", None)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: np.ascontiguousarray(value) for name, value in sorted(tensors.items())},
        path,
        metadata=metadata,
    )
    return path
