"""`import kerasllm` gives every public subpackage as an attribute, loaded on first use."""

from __future__ import annotations

import subprocess
import sys


def test_subpackages_are_attributes_and_import_kerasllm_stays_light():
    code = (
        "import sys, kerasllm\n"
        "assert 'tensorflow' not in sys.modules, 'import kerasllm imported TensorFlow'\n"
        "assert {'zoo', 'data', 'datasets', 'metrics', 'models', 'text_to_text', 'tokenizers'}"
        " <= set(dir(kerasllm))\n"
        "assert 'translation' not in dir(kerasllm), 'the application is in examples/'\n"
        "print(type(kerasllm.zoo.get).__name__, kerasllm.data.__name__, kerasllm.models.__name__)\n"
        "print(kerasllm.datasets.parallel_corpus.__module__, kerasllm.metrics.score.__module__,"
        " kerasllm.text_to_text.TextToText.__name__)\n"
        "try:\n"
        "    kerasllm.no_such_module\n"
        "except AttributeError as error:\n"
        "    print('AttributeError', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "function kerasllm.data kerasllm.models"
    assert lines[1] == "kerasllm.datasets.corpora kerasllm.metrics.generation TextToText"
    assert "no_such_module" in lines[2]
