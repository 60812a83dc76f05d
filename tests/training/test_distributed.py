"""Distribution and fault tolerance, each in fresh processes: MirroredStrategy on two logical CPU
devices, a two-process MultiWorkerMirroredStrategy cluster on 127.0.0.1, and `kill -9` + rerun."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from training_helpers import REFERENCE_STEPS, REPO, SCRIPTS, run_script


def result_of(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_two_mirrored_cpu_replicas_match_one_device(tmp_path):
    process = run_script("mirrored_vs_one_device.py", tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    results = result_of(process.stdout)
    for data_kind in ("dataset", "function_accumulated"):
        assert results[data_kind]["replicas"] == 2
        assert results[data_kind]["step"] == 4
        # Same global batch, loss normalized by the global token count: the updates agree up to
        # float32 summation order.
        assert results[data_kind]["max_difference"] < 1e-5, results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_worker_multi_worker_mirrored_run(tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(REPO),
        }
        command = [
            sys.executable,
            str(SCRIPTS / "multi_worker.py"),
            str(tmp_path / "run"),
            str(tmp_path / f"weights_{index}.npz"),
        ]
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    chief, other = (result_of(out) for out, _ in outputs)
    assert chief["strategy"] == "CollectiveAllReduceStrategy" and chief["replicas"] == 2
    assert chief["step"] == other["step"] == 6
    assert chief["loss_after"] < chief["loss_before"]
    first, second = np.load(tmp_path / "weights_0.npz"), np.load(tmp_path / "weights_1.npz")
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # Only the chief writes into the model directory; the other worker saved to a scratch
    # directory that it removed.
    assert chief["is_chief"] and not other["is_chief"]
    assert chief["checkpoint_dir"] == str(tmp_path / "run")
    assert not os.path.exists(other["checkpoint_dir"])
    assert (tmp_path / "run" / "ckpt-6.index").exists()
    files = [p.relative_to(tmp_path / "run") for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert not [p for p in files if p.parts[0] == ".tmp"]


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path, reference_weights):
    model_dir = tmp_path / "killed"
    command = [sys.executable, str(SCRIPTS / "resumable_run.py"), str(model_dir), "0.3"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    log = tmp_path / "killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while not (model_dir / "ckpt-4.index").exists():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # at least 4 batches of 0.3 s are left
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (model_dir / "weights.npz").exists()  # it really died before the end

    rerun = run_script("resumable_run.py", model_dir, 0)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = result_of(rerun.stdout)
    assert 4 <= result["start_step"] < REFERENCE_STEPS  # resumed, not restarted
    assert result["step"] == REFERENCE_STEPS
    resumed = np.load(model_dir / "weights.npz")
    for index, expected in enumerate(reference_weights):
        np.testing.assert_allclose(resumed[f"arr_{index}"], expected, atol=1e-6)


def test_keras_fit_on_strings_under_mirrored_strategy():
    # `model.fit` (not the Trainer) with two replicas: the task model's preprocessor and
    # compile() defaults work in a strategy scope, and training makes progress.
    process = run_script("keras_fit_mirrored.py")
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["predict_shape"] == [1, 2]
    losses = result["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
