"""Checkpoint folders are untrusted: shard names stay inside the folder, headers are bounded."""

import json
import struct

import numpy as np
import pytest

from kerasllm.convert import read_checkpoint_tensors, read_tensors, write_safetensors


def _sharded_folder(folder, weight_map):
    folder.mkdir(parents=True, exist_ok=True)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_sharded_index_merges_its_shards(tmp_path):
    folder = tmp_path / "ckpt"
    write_safetensors({"a": np.ones(2, "float32")}, folder / "model-00001-of-00002.safetensors")
    write_safetensors({"b": np.zeros(3, "float32")}, folder / "model-00002-of-00002.safetensors")
    _sharded_folder(
        folder, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    )
    tensors = read_checkpoint_tensors(folder)
    assert sorted(tensors) == ["a", "b"] and tensors["b"].shape == (3,)


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_sharded_index_names_stay_inside_the_checkpoint_folder(tmp_path, kind):
    outside = write_safetensors(
        {"secret": np.arange(4, dtype="float32")}, tmp_path / "x.safetensors"
    )
    folder = tmp_path / "ckpt"
    folder.mkdir()
    name = {"parent": "../x.safetensors", "absolute": str(outside), "symlink": "s.safetensors"}
    if kind == "symlink":
        (folder / "s.safetensors").symlink_to(outside)
    _sharded_folder(folder, {"secret": name[kind]})
    with pytest.raises(ValueError, match=f"weight shard '{name[kind]}'.*(outside|absolute)"):
        read_checkpoint_tensors(folder)


def test_sharded_index_with_a_malformed_weight_map(tmp_path):
    folder = _sharded_folder(tmp_path / "ckpt", ["model.safetensors"])
    with pytest.raises(ValueError, match="'weight_map' must be an object"):
        read_checkpoint_tensors(folder)


def _raw_safetensors(path, header: dict, data: bytes, header_size: int | None = None):
    encoded = json.dumps(header).encode()
    size = len(encoded) if header_size is None else header_size
    path.write_bytes(struct.pack("<Q", size) + encoded + data)
    return path


def test_safetensors_header_size_is_bounded_by_the_file(tmp_path):
    # The size field is read from the file; 2**62 used to be handed to file.read().
    path = _raw_safetensors(tmp_path / "w.safetensors", {}, b"", header_size=2**62)
    with pytest.raises(ValueError, match="header claims 4611686018427387904 bytes"):
        read_tensors(path)


@pytest.mark.parametrize(
    "shape, offsets",
    [([2], [0, 8]), ([4], [0, 100]), ([4], [4, 0]), ([-4], [0, 8]), ("4", [0, 8])],
)
def test_safetensors_bfloat16_offsets_must_fit_shape_and_data(tmp_path, shape, offsets):
    header = {"w": {"dtype": "BF16", "shape": shape, "data_offsets": offsets}}
    path = _raw_safetensors(tmp_path / "w.safetensors", header, bytes(8))
    with pytest.raises(ValueError, match="tensor 'w' .*(do not fit|malformed)"):
        read_tensors(path)
