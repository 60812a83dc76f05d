import io
import pickle
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from kerasllm.convert import load_torch_state_dict, read_tensors, write_safetensors


def test_torch_bin_reader_matches_torch(fixtures_dir):
    tensors = read_tensors(fixtures_dir / "torch_formats.bin")
    expected = np.load(fixtures_dir / "torch_formats.npz")
    assert sorted(tensors) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(tensors[name], expected[name], err_msg=name)
        assert tensors[name].shape == expected[name].shape, name
    assert tensors["int64"].dtype == np.int64 and tensors["bool"].dtype == np.bool_
    assert tensors["float16"].dtype == np.float16
    # Views of one storage come back with the view's layout, as read-only views that share
    # the storage's memory (tensors cost no more memory than the storages they view).
    np.testing.assert_array_equal(tensors["transposed"], tensors["float32"].T)
    np.testing.assert_array_equal(tensors["column"], tensors["float32"][:, 1])
    assert np.shares_memory(tensors["transposed"], tensors["float32"])
    assert not any(array.flags.writeable for array in tensors.values() if array.size)


def test_safetensors_reader_widens_bfloat16(fixtures_dir):
    tensors = read_tensors(fixtures_dir / "torch_formats.safetensors")
    expected = np.load(fixtures_dir / "torch_formats.npz")
    for name in ("bfloat16", "float16", "float32"):
        np.testing.assert_array_equal(tensors[name], expected[name], err_msg=name)
    assert tensors["bfloat16"].dtype == np.float32


def test_safetensors_round_trip(tmp_path):
    arrays = {"b": np.arange(6, dtype="float32").reshape(2, 3).T, "a": np.array([1, 2], "int64")}
    path = write_safetensors(arrays, tmp_path / "sub" / "w.safetensors", {"format": "pt"})
    loaded = read_tensors(path)
    assert sorted(loaded) == ["a", "b"]
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="Unsupported tensor file 'w.npz'"):
        read_tensors(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        read_tensors(tmp_path / "absent.safetensors")
    (tmp_path / "legacy.bin").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a zip-format PyTorch checkpoint"):
        read_tensors(tmp_path / "legacy.bin")


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_torch_reader_refuses_arbitrary_globals(tmp_path, capsys):
    path = tmp_path / "evil.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"w": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="refers to __builtin__.print.*refusing to run it"):
        load_torch_state_dict(path)
    assert "pwned" not in capsys.readouterr().out


def test_torch_reader_rejects_non_tensor_entries(tmp_path):
    path = tmp_path / "nested.bin"
    buffer = io.BytesIO()
    pickle.dump({"step": 3}, buffer, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("nested/data.pkl", buffer.getvalue())
    with pytest.raises(ValueError, match="entry 'step' is a int, not a tensor"):
        load_torch_state_dict(path)


def _state_dict_pickle(size: int) -> bytes:
    """The pickle torch.save writes for {"w": <float32 tensor of shape (size,)> on storage 0}."""
    return _crafted_pickle([("w", "0", 4, 0, (size,), (1,))])


@pytest.mark.parametrize("size", [4, 10])
def test_torch_reader_bounds_checks_views(tmp_path, size):
    path = tmp_path / "w.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w/data.pkl", _state_dict_pickle(size))
        archive.writestr("w/data/0", np.arange(4, dtype="<f4").tobytes())
    if size <= 4:
        np.testing.assert_array_equal(load_torch_state_dict(path)["w"], np.arange(size))
    else:
        with pytest.raises(ValueError, match=r"shape \(10,\).*past its storage of 4 elements"):
            load_torch_state_dict(path)


# Crafted checkpoints: every tensor is checked against its storage before anything is read.


def _int(value: int) -> bytes:
    """A pickled int of any size (LONG1: little-endian two's complement)."""
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(data)]) + data


def _tuple(values) -> bytes:
    return pickle.MARK + b"".join(_int(v) for v in values) + pickle.TUPLE


def _text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + len(data).to_bytes(4, "little") + data


def _crafted_pickle(tensors) -> bytes:
    """The pickle torch.save writes for a dict of tensors, each given as
    `(name, storage key, storage numel, offset, shape, strides)` on a FloatStorage."""
    items = b""
    for name, key, numel, offset, shape, strides in tensors:
        storage = (
            pickle.MARK
            + _text("storage")
            + pickle.GLOBAL
            + b"torch\nFloatStorage\n"
            + _text(key)
            + _text("cpu")
            + _int(numel)
            + pickle.TUPLE
            + pickle.BINPERSID
        )
        items += (
            _text(name)
            + pickle.GLOBAL
            + b"torch._utils\n_rebuild_tensor_v2\n"
            + pickle.MARK
            + storage
            + _int(offset)
            + _tuple(shape)
            + _tuple(strides)
            + pickle.NEWFALSE
            + pickle.GLOBAL
            + b"collections\nOrderedDict\n"
            + pickle.EMPTY_TUPLE
            + pickle.REDUCE
            + pickle.TUPLE
            + pickle.REDUCE
        )
    return (
        pickle.PROTO
        + b"\x02"
        + pickle.EMPTY_DICT
        + pickle.MARK
        + items
        + pickle.SETITEMS
        + pickle.STOP
    )


def _crafted_checkpoint(path, tensors, storages, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("w/data.pkl", _crafted_pickle(tensors))
        for key, data in storages.items():
            archive.writestr(f"w/data/{key}", data)
    return path


def _load_measured(path):
    """`load_torch_state_dict(path)`, its result or error, and the peak memory it allocated."""
    tracemalloc.start()
    try:
        try:
            result = load_torch_state_dict(path)
        except ValueError as error:
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_broadcast_view_is_refused_before_allocating(tmp_path):
    # The case: a ~500-byte file whose one-element storage is viewed with stride 0 as
    # a (16384, 16384) float32 tensor became a 1 GiB array.
    path = _crafted_checkpoint(
        tmp_path / "broadcast.bin",
        [("w", "0", 1, 0, (2**14, 2**14), (0, 0))],
        {"0": np.ones(1, "<f4").tobytes()},
    )
    assert path.stat().st_size < 1000
    error, peak = _load_measured(path)
    assert isinstance(error, ValueError)
    assert "tensor 'w'" in str(error) and "broadcast or stride-0 view" in str(error)
    assert peak < 2**20


@pytest.mark.parametrize(
    "numel, offset, shape, strides, message",
    [
        (16, 0, (4, 4), (1, 1), "overlap"),  # rows that share elements
        (16, 0, (4, -4), (4, 1), r"shape \(4, -4\); dimensions must be non-negative"),
        (16, 0, (4, 4), (4, -1), "non-negative integers"),
        (16, -1, (4,), (1,), "non-negative integers"),
        (16, 14, (4,), (1,), "reaches past its storage of 16 elements"),
        (16, 0, (4, 4, 4), (16, 4, 1), "reaches past its storage of 16 elements"),
        (2**40, 0, (2**40,), (1,), "declared as 1099511627776 FloatStorage elements"),
        (16, 0, (2,) * 40, (1,) * 40, "40 dimensions"),
    ],
)
def test_views_that_do_not_fit_their_storage_are_refused(
    tmp_path, numel, offset, shape, strides, message
):
    path = _crafted_checkpoint(
        tmp_path / "w.bin",
        [("layer.weight", "0", numel, offset, shape, strides)],
        {"0": np.arange(16, dtype="<f4").tobytes()},
    )
    error, peak = _load_measured(path)
    assert isinstance(error, ValueError), error
    assert "'layer.weight'" in str(error)
    assert re.search(message, str(error)), str(error)
    assert peak < 2**20


def test_storage_must_hold_exactly_its_declared_elements(tmp_path):
    # A compressed storage that inflates to 16 MiB behind a tensor of 4 elements was read in
    # full; now its size is compared with the declared count before it is read.
    path = _crafted_checkpoint(
        tmp_path / "bomb.bin",
        [("w", "0", 4, 0, (4,), (1,))],
        {"0": bytes(16 * 2**20)},
        compression=zipfile.ZIP_DEFLATED,
    )
    assert path.stat().st_size < 100_000
    error, peak = _load_measured(path)
    assert isinstance(error, ValueError)
    assert "tensor 'w' uses storage '0', declared as 4 FloatStorage elements (16 bytes)" in str(
        error
    )
    assert peak < 2**20
    missing = _crafted_checkpoint(tmp_path / "missing.bin", [("w", "7", 4, 0, (4,), (1,))], {})
    with pytest.raises(ValueError, match="storage '7', which the archive lacks"):
        load_torch_state_dict(missing)


def test_tensors_sharing_a_storage_share_its_memory(tmp_path):
    # 200 tensors viewing one 256 KiB storage used to be 200 copies (50 MiB from a 256 KiB
    # file); as views they cost the storage once.
    storage = np.arange(2**16, dtype="<f4")
    tensors = [(f"t{i}", "0", 2**16, i, (2**16 - 200,), (1,)) for i in range(200)]
    path = _crafted_checkpoint(tmp_path / "shared.bin", tensors, {"0": storage.tobytes()})
    result, peak = _load_measured(path)
    assert not isinstance(result, Exception), result
    np.testing.assert_array_equal(result["t3"], storage[3 : 3 + 2**16 - 200])
    assert peak < 4 * storage.nbytes
