import io
import pickle
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
    # Views of one storage come back as independent arrays with the view's layout.
    np.testing.assert_array_equal(tensors["transposed"], tensors["float32"].T)
    np.testing.assert_array_equal(tensors["column"], tensors["float32"][:, 1])


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

    def text(value: str) -> bytes:
        data = value.encode()
        return pickle.BINUNICODE + len(data).to_bytes(4, "little") + data

    def small_int(value: int) -> bytes:
        return pickle.BININT1 + bytes([value])

    storage = (
        pickle.MARK
        + text("storage")
        + pickle.GLOBAL
        + b"torch\nFloatStorage\n"
        + text("0")
        + text("cpu")
        + small_int(4)
        + pickle.TUPLE
        + pickle.BINPERSID
    )
    tensor = (
        pickle.GLOBAL
        + b"torch._utils\n_rebuild_tensor_v2\n"
        + pickle.MARK
        + storage
        + small_int(0)  # storage offset
        + small_int(size)
        + pickle.TUPLE1
        + small_int(1)
        + pickle.TUPLE1
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
        + text("w")
        + tensor
        + pickle.SETITEMS
        + pickle.STOP
    )


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
