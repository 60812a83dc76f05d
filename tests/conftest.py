import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends under the float32 policy, whatever it changed."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(autouse=True)
def _auto_means_float32(request, monkeypatch):
    """`precision="auto"` / `jit_compile="auto"` resolve to float32 without XLA (the defaults
    before "auto" existed) in every test not marked `real_hardware`, so the suite's numbers do
    not depend on the machine's CPU flags or GPUs. Tests of "auto" fake the hardware they need.
    (Subprocesses see the real machine: their configs name their precision.)"""
    if request.node.get_closest_marker("real_hardware") is None:
        from kerasllm import hardware

        pinned = hardware.Choice("float32", False, "cpu", "pinned by tests/conftest.py")
        monkeypatch.setattr(hardware, "detect", lambda: pinned)
