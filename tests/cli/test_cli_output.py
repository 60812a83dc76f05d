"""The command line's output hygiene: TensorFlow's own log lines hidden by default, shown by
`kerasllm --verbose` or a `TF_CPP_MIN_LOG_LEVEL` the user set."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf

from kerasllm.cli import _inference, _top_level_options, filter_tf_log

REPO = Path(__file__).resolve().parents[2]
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def run_python(*args, env_level=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if env_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = env_level
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_command_prints_no_tensorflow_log_lines_by_default():
    # Without the filter TensorFlow 2.21 prints, while it loads, absl's "All log messages
    # before absl::InitializeLog()" notice with oneDNN and "Could not find cuda drivers"
    # (cudart_stub) lines, whatever TF_CPP_MIN_LOG_LEVEL says; and "failed call to cuInit"
    # when it looks for a GPU unless the level is 3.
    result = run_python("-m", "kerasllm.cli", "zoo", "list")
    assert result.returncode == 0, result.stderr
    assert "bert_tiny" in result.stdout
    for marker in ("cuInit", "cudart", "CUDA", "oneDNN", "absl::InitializeLog"):
        assert marker not in result.stderr, result.stderr
    assert not TF_LOG_LINE.search(result.stderr), result.stderr


def test_import_kerasllm_quiets_tensorflow_unless_the_user_chose_a_level():
    code = (
        "import os, kerasllm, tensorflow as tf; tf.config.list_physical_devices(); "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    quiet = run_python("-c", code)
    assert quiet.stdout.split() == ["3"] and "cuInit" not in quiet.stderr
    chosen = run_python("-c", code, env_level="1")
    assert chosen.stdout.split() == ["1"]


def test_verbose_brings_the_log_lines_back():
    code = (
        "import os; from kerasllm import cli; cli.main(['--verbose', 'zoo', 'show', "
        "'bert_tiny']); print('LEVEL', os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert "LEVEL 0" in result.stdout
    # Only options before the command count: `pretrain --verbose 2` is the trainer's.
    assert _top_level_options(["--verbose", "zoo", "list"]) == ["--verbose"]
    assert _top_level_options(["pretrain", "--verbose", "2"]) == []


SAMPLE = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796350868.022168    6657 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796350869.962167    6667 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
W0000 00:00:1796350870.243915    6657 some.cc:52] a warning
E0000 00:00:1796350870.243915    6657 cuda_platform.cc:52] failed call to cuInit: CUDA error
a line of Python's own
"""


def test_filter_tf_log_drops_the_lines_below_the_level_and_keeps_the_rest():
    assert filter_tf_log(SAMPLE, 0) == SAMPLE
    assert filter_tf_log(SAMPLE, 1).splitlines() == SAMPLE.splitlines()[4:]
    assert filter_tf_log(SAMPLE, 2).splitlines() == SAMPLE.splitlines()[5:]
    assert filter_tf_log(SAMPLE, 3) == "a line of Python's own\n"


def test_parsing_the_command_line_imports_no_tensorflow():
    # `kerasllm --help` and usage errors stay instant, and TensorFlow loads only after the log
    # level is set, through the filter: no subcommand module may import it at import time.
    code = (
        "import sys; from kerasllm import cli; cli.build_parser().parse_args(['zoo', 'list']); "
        "print('tensorflow' in sys.modules)"
    )
    result = run_python("-c", code)
    assert result.stdout.split() == ["False"], result.stderr


CONTROL = {"\r", "\b", "\x1b"}


class TinyServing(tf.Module):
    """The smallest module `exporter.write` saves: one string signature and its warm-up."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def length(self, text):
        return {"length": tf.strings.length(text)}

    def signatures(self):
        return {"serving_default": self.length}

    def warmup_requests(self):
        return [("serving_default", {"text": np.array([b"a b"], dtype=object)})]


def test_export_shows_its_stages_on_standard_error(tmp_path, capsys, monkeypatch):
    from kerasllm.cli import export as export_command
    from kerasllm.cli import main
    from kerasllm.export import exporter

    monkeypatch.setattr(export_command, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(exporter, "_resolve", lambda model, task: SimpleNamespace(
        model=None, tokenizers={}, metadata={}
    ))  # fmt: skip
    monkeypatch.setattr(exporter, "serving_module", lambda *args, **kwargs: TinyServing())
    assert main(["export", "--model", "anything", "--out", str(tmp_path / "tiny")]) == 0
    out, err = capsys.readouterr()
    assert out == f"Exported version 1 to {tmp_path / 'tiny' / '1'}\n"
    assert not CONTROL & set(err)
    shown = [line.split(" [")[0] for line in err.splitlines() if line.startswith("export step")]
    # The first update at once, then a line per 15 s (none on a quick export), and the last.
    assert shown[0] == "export step 1/4: loading the model" and len(shown) <= 4, err
    assert shown[-1] == "export step 4/4: done", err
    assert all(line.endswith("elapsed") for line in err.splitlines() if line.startswith("export"))
    assert (tmp_path / "tiny" / "1" / "saved_model.pb").exists()


def test_export_stages_in_order(tmp_path):
    from kerasllm.export import exporter
    from kerasllm.utils.progress import Progress

    text = io.StringIO()
    progress = Progress(4, stream=text, interval=0, label="export step", eta=False)
    exporter.write(TinyServing(), tmp_path / "m", progress=progress)
    progress.close()
    stages = [line.split(": ", 1)[1].split(" [")[0] for line in text.getvalue().splitlines()]
    assert stages == list(exporter.EXPORT_STAGES[1:])


def test_keras_evaluate_progress_goes_to_standard_error_without_control_characters(capsys):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    x, y = np.ones((10, 3), "float32"), np.zeros((10, 1), "float32")
    model.evaluate(
        x, y, batch_size=4, verbose=0, callbacks=[_inference.keras_progress(10, batch_size=4)]
    )
    out, err = capsys.readouterr()
    assert out == "" and not CONTROL & set(err)
    lines = err.splitlines()
    assert lines[0].startswith("batch 1/3 [======.") and "loss=" in lines[0]
    assert lines[-1].startswith("batch 3/3 [====================] 100% loss=")
    # `model.predict` (the tagger's entity scores) the same way, without metrics.
    model.predict(x, batch_size=4, verbose=0, callbacks=[_inference.keras_progress(10, 4)])
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1] == "batch 3/3 [====================] 100%"
