"""`kerasllm.utils.progress.Progress`, the one progress display: refreshed by time, plain lines
without control characters when not on a terminal, standard error by default, `delay` for
quick work, `heartbeat` for long calls without updates, `below` for a display inside another."""

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerasllm.utils.progress import PLAIN_INTERVAL, TERMINAL_INTERVAL, Progress

REPO = Path(__file__).resolve().parents[2]
CONTROL = {"\r", "\b", "\x1b"}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_refreshes_by_time_not_by_update_count():
    clock, out = Clock(), io.StringIO()
    progress = Progress(1000, stream=out, clock=clock)
    assert (progress.dynamic, progress.interval) == (False, PLAIN_INTERVAL)
    for step in range(1, 1001):
        clock.now = step * 0.1  # 100 s in all: a line at 0.1 s, then about every 15 s
        progress.update(step, {"loss": 1.0 / step})
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8, lines  # 0.1, 15.1, 30.1, ..., 90.1 s, and the last update
    assert lines[-1].startswith("step 1000/1000 [====================] 100% loss=0.001")
    assert "ETA" in lines[1] and "ETA" not in lines[-1]
    assert not CONTROL & set(out.getvalue())


def test_time_left_counts_to_an_expected_earlier_end():
    clock, out = Clock(), io.StringIO()
    progress = Progress(100000, stream=out, clock=clock, interval=0)
    progress.update(0)
    clock.now = 10.0
    progress.update(100)  # 10 steps per second
    assert "ETA 2:46:30" in progress.line(clock.now)  # 99,900 steps left
    progress.expect_end(400)  # e.g. a time budget that runs out at step 400
    assert "ETA 0:30" in progress.line(clock.now) and "step 100/100000" in progress.line(10.0)
    progress.expect_end(None)
    assert "ETA 2:46:30" in progress.line(clock.now)
    progress.close()


def test_on_a_terminal_one_line_is_rewritten_with_carriage_returns_only():
    clock, out = Clock(), Terminal()
    progress = Progress(10, stream=out, clock=clock)
    assert (progress.dynamic, progress.interval) == (True, TERMINAL_INTERVAL)
    for step in range(1, 11):
        clock.now = step * 1.0
        progress.update(step)
    progress.message("a log line")
    progress.close()
    text = out.getvalue()
    assert "\x1b" not in text and "\b" not in text
    # At 1, 3, 5, 7, 9 s (every 2 s); the message ends the line; close shows step 10.
    assert text.count("\r") == 6
    assert text.endswith("\na log line\n\rstep 10/10 [====================] 100%\n")


def test_writes_to_standard_error_by_default(capsys):
    progress = Progress(2, interval=0)
    progress.update(2)
    progress.close()
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("step 2/2")


def test_unknown_total_label_and_status():
    out = io.StringIO()
    with Progress(None, stream=out, interval=0, label="eval batch") as progress:
        progress.update(3, {"loss": 2.0})
        progress.update(4, status="saving")
    lines = out.getvalue().splitlines()
    assert lines == ["eval batch 3 loss=2", "eval batch 4: saving loss=2"]
    with pytest.raises(TypeError, match="`total` must be an int or None; got 2.5"):
        Progress(2.5)


def test_delay_hides_work_that_ends_quickly():
    clock, out = Clock(), io.StringIO()
    quick = Progress(5, stream=out, interval=0, delay=2.0, clock=clock)
    for step in range(1, 6):
        clock.now = step * 0.3
        quick.update(step)
    quick.close()
    assert out.getvalue() == ""
    slow = Progress(5, stream=out, interval=0, delay=2.0, clock=clock)
    clock.now += 2.5
    slow.update(1)
    slow.close()
    assert out.getvalue().startswith("step 1/5")


def test_heartbeat_refreshes_while_no_update_comes():
    out = io.StringIO()
    progress = Progress(None, stream=out, interval=0.05, label="export", heartbeat=True)
    progress.update(1, status="saving the SavedModel")
    time.sleep(0.4)  # one long call: no update
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines
    assert all(line.startswith("export 1: saving the SavedModel") for line in lines)
    assert lines[-1].endswith("elapsed")
    assert not progress._thread.is_alive()


def test_a_display_below_another_ends_its_line_first():
    clock, out = Clock(), Terminal()
    outer = Progress(10, stream=out, clock=clock)
    outer.update(5)
    inner = Progress(3, stream=out, label="eval batch", below=outer, clock=clock)
    inner.update(1)
    inner.close()
    clock.now = 10.0
    outer.update(6)
    outer.close()
    lines = out.getvalue().split("\n")
    assert lines[0] == "\rstep 5/10 [==========..........]  50%"
    assert lines[1].startswith("\reval batch 1/3")
    assert lines[2].startswith("\rstep 6/10")


def test_the_module_loads_no_framework():
    code = (
        "import sys, kerasllm.utils.progress; "
        "print([m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
