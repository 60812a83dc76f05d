"""kerasllm from a wheel: package data (the shipped translation preset) is found inside the
installed package, never relative to a repository checkout.

Slow (builds a wheel and a virtual environment, ~1 min): `pytest -m slow tests/test_wheel.py`.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import kerasllm, sys
assert kerasllm.__file__.startswith(sys.prefix), kerasllm.__file__
model = kerasllm.zoo.get("translate_en_fr")
print(model.generate("In the beginning God created the heavens and the earth."))
"""


@pytest.mark.slow
def test_installed_wheel_loads_the_shipped_preset(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(wheels), str(ROOT)],
        check=True,
    )
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (TensorFlow, ...) come from this interpreter's site-packages; a plain
    # path line in a .pth file does not run that directory's own .pth files, so the
    # development (editable) install of kerasllm stays invisible.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("kerasllm-*.whl"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    # Run from an empty directory: nothing may be found relative to the checkout.
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run(
        [python, "-c", CHECK], cwd=work, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Dieu" in result.stdout, result.stdout
