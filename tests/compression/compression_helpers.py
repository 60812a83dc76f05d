"""What the compression tests share: serving an exported model from a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_fresh(script: str, *args: str, cwd) -> object:
    """Run `script` (Python source) in a new interpreter with `args`, as a server would load an
    export: nothing of this process carried over. The script prints `RESULT` and then JSON;
    returns that JSON. Fails the test with the child's standard error if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])
