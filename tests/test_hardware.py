"""`kerasllm.hardware`: what `"auto"` precision and compilation resolve to, on fake hardware."""

import logging

import pytest

from kerasllm import hardware

AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n"
AVX512_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
NO_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


@pytest.mark.parametrize(
    ("cpuinfo", "gpus", "expected"),
    [
        (AMX, [], ("mixed_bfloat16", False, "cpu")),
        (AVX512_BF16, [], ("mixed_bfloat16", False, "cpu")),
        (NO_BF16, [], ("float32", False, "cpu")),
        ("", [], ("float32", False, "cpu")),  # no flags line (not Linux)
        (NO_BF16, [{"compute_capability": (7, 5)}], ("mixed_float16", True, "gpu")),
        (NO_BF16, [{"compute_capability": (9, 0)}], ("mixed_bfloat16", True, "gpu")),
        (AMX, [{"compute_capability": (8, 0)}], ("mixed_bfloat16", True, "gpu")),
        (AMX, [{"compute_capability": (6, 1)}], ("float32", True, "gpu")),
        (AMX, [{"device_name": "a GPU that reports no capability"}], ("float32", True, "gpu")),
        # Every replica runs one policy: the oldest GPU decides.
        (NO_BF16, [{"compute_capability": (9, 0)}, {"compute_capability": (7, 0)}],
         ("mixed_float16", True, "gpu")),
    ],
)  # fmt: skip
def test_the_policy_follows_the_hardware(cpuinfo, gpus, expected):
    choice = hardware.choose(cpuinfo=cpuinfo, gpus=gpus, environ={})
    assert (choice.precision, choice.jit_compile, choice.device) == expected
    assert choice.loss_scaling == (choice.precision == "mixed_float16")


def test_the_reason_names_what_decided():
    assert "amx_bf16" in hardware.choose(cpuinfo=AMX, gpus=[], environ={}).reason
    assert "avx512_bf16" in hardware.choose(cpuinfo=AVX512_BF16, gpus=[], environ={}).reason
    gpu = hardware.choose(cpuinfo=NO_BF16, gpus=[{"compute_capability": (7, 5)}])
    assert "7.5" in gpu.reason and "7.5" in gpu.describe()


def test_onednn_off_means_no_fast_bfloat16():
    choice = hardware.choose(cpuinfo=AMX, gpus=[], environ={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert choice.precision == "float32" and "TF_ENABLE_ONEDNN_OPTS" in choice.reason


def test_tpus_compute_in_bfloat16():
    choice = hardware.choose(cpuinfo=NO_BF16, gpus=[], tpu=True)
    assert (choice.precision, choice.jit_compile, choice.device) == ("mixed_bfloat16", True, "tpu")


def test_cpu_flags_reads_the_first_flags_line():
    assert hardware.cpu_flags(AMX + "flags\t: other\n") >= {"amx_bf16", "amx_tile", "avx512f"}
    assert "other" not in hardware.cpu_flags(AMX + "flags\t: other\n")
    assert hardware.cpu_flags("model name\t: no flags here\n") == frozenset()


@pytest.mark.parametrize(
    ("precision", "jit_compile", "named"),
    [("bfloat16", "auto", "`precision`"), ("auto", "yes", "`jit_compile`"),
     ("float32", 1, "`jit_compile`"), (None, False, "`precision`")],
)  # fmt: skip
def test_invalid_values_name_the_argument(precision, jit_compile, named):
    with pytest.raises(ValueError, match=named):
        hardware.resolve(precision, jit_compile)


def test_resolve_replaces_only_what_is_auto(monkeypatch):
    fake = hardware.Choice("mixed_float16", True, "gpu", "fake compute capability 7.5")
    monkeypatch.setattr(hardware, "detect", lambda: fake)
    assert hardware.resolve("auto", "auto") == ("mixed_float16", True, fake)
    assert hardware.resolve("float32", "auto") == ("float32", True, fake)
    assert hardware.resolve("auto", False) == ("mixed_float16", False, fake)
    monkeypatch.setattr(hardware, "detect", lambda: pytest.fail("detected without 'auto'"))
    assert hardware.resolve("mixed_bfloat16", True) == ("mixed_bfloat16", True, None)


@pytest.mark.real_hardware
def test_detect_is_cached_and_logged_once(caplog):
    hardware.detect.cache_clear()
    with caplog.at_level(logging.INFO, logger="kerasllm.hardware"):
        first, second = hardware.detect(), hardware.detect()
    assert first is second
    lines = [r.getMessage() for r in caplog.records if r.name == "kerasllm.hardware"]
    assert lines == [first.describe()]
    assert first.precision in hardware.PRECISIONS and lines[0].startswith("auto: precision")
