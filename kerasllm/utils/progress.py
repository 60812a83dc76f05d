"""`Progress`: the one progress display of kerasllm (training, evaluation, inference, export,
tokenizer training, tuning trials), refreshed by wall-clock time.

On a terminal it is one line rewritten in place (a carriage return, then the line padded with
spaces over the previous one: no ANSI escape codes) about every `TERMINAL_INTERVAL` seconds.
When the output is not a terminal (a log file, a pipe, a batch system), rewriting in place would
fill the file with carriage returns, so it writes a plain line, ended by a newline, about every
`PLAIN_INTERVAL` seconds. Either way it never refreshes more often than that, however often it
is updated, and it shows the last update when the work ends.

Work that runs in one long call (saving a SavedModel, training a SentencePiece model) gets no
updates while it runs; `heartbeat=True` refreshes the display from a background thread, so the
elapsed time keeps moving. `delay` hides work that ends quickly: nothing is shown before it.

Displays write to standard error by default: results go to standard output, and a command's
output stays parseable when progress is shown.

This module imports nothing beyond the standard library (it sits at the bottom of the
layering, so the export and tuning code can use it as well as the trainer).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

#: Seconds between refreshes on a terminal, and of plain lines otherwise.
TERMINAL_INTERVAL = 2.0
PLAIN_INTERVAL = 15.0


def _format_value(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def format_seconds(seconds: float) -> str:
    """`seconds` as `M:SS`, or `H:MM:SS` from an hour on.

    Example:
    >>> format_seconds(75), format_seconds(3725)
    ('1:15', '1:02:05')
    """
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Shows `label done/total`, a bar, the latest values, a status and the time left,
    refreshed by time.

    Args:
        total: the count at which the work ends; None when it is not known (then neither a
            bar nor the time left is shown).
        stream: where to write (default: `sys.stderr` at construction).
        dynamic: rewrite one line in place (True) or write plain lines (False); by default,
            whether `stream` is a terminal.
        interval: seconds between refreshes; by default `TERMINAL_INTERVAL` when dynamic,
            else `PLAIN_INTERVAL`.
        label: what is counted ("step", "eval batch", "examples", "trial 3 step").
        delay: seconds after construction before anything is shown; work that ends sooner
            shows nothing.
        heartbeat: refresh from a background thread as well (every `interval`), for work that
            runs for long between updates; the line then shows the time elapsed.
        eta: show the estimated time left (off for stages of unequal length).
        below: a display already on the same stream (the trainer's, while an evaluation runs):
            its line is ended before this display's first one, so neither overwrites the other.
        clock: the time source (seconds), replaceable in tests.

    Use it as a context manager, or call `close()` at the end.

    Example:
    >>> import io
    >>> out = io.StringIO()
    >>> progress = Progress(100, stream=out, dynamic=False, interval=0)
    >>> progress.update(50, {"loss": 2.5})
    >>> progress.close()
    >>> out.getvalue().splitlines()[0].startswith("step 50/100")
    True
    >>> with Progress(None, stream=out, dynamic=False, interval=0, label="export") as shown:
    ...     shown.update(1, status="saving")
    >>> out.getvalue().splitlines()[-1].startswith("export 1: saving")
    True
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        dynamic: bool | None = None,
        interval: float | None = None,
        label: str = "step",
        delay: float = 0.0,
        heartbeat: bool = False,
        eta: bool = True,
        below: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise TypeError(f"`total` must be an int or None; got {total!r}.")
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if dynamic is None:
            isatty = getattr(self.stream, "isatty", None)
            dynamic = bool(isatty and isatty())
        self.dynamic = dynamic
        self.interval = (
            interval if interval is not None else (TERMINAL_INTERVAL if dynamic else PLAIN_INTERVAL)
        )
        self.label = label
        self.delay = delay
        self.below = below
        self.eta = eta
        self._clock = clock
        self._created = clock()
        self._values: dict[str, float] = {}
        self._status: str | None = None
        self._step: int | None = None
        self._changed = False  # an update since the last refresh
        self._last_render: float | None = None
        self._width = 0  # length of the line on screen (dynamic mode), 0 when none is
        self._origin: tuple[float, int] | None = None  # (time, step) of the first update
        self._expected_end: int | None = None  # an earlier end than `total` (a time budget)
        self._heartbeat = heartbeat
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name="kerasllm-progress")
            self._thread.daemon = True  # never keeps the process alive
            self._thread.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def update(
        self, step: int, values: Mapping[str, float] | None = None, status: str | None = None
    ) -> None:
        """Records `step`, the latest `values` (they replace earlier ones of the same name) and
        `status` (a short text, e.g. what runs now; kept until replaced); refreshes the display
        if `interval` has passed since the last refresh."""
        with self._lock:
            now = self._clock()
            if self._origin is None:
                self._origin = (now, step)
            self._step = step
            if values:
                self._values.update({name: float(value) for name, value in values.items()})
            if status is not None:
                self._status = status
            self._changed = True
            self._maybe_render(now)

    def expect_end(self, step: int | None) -> None:
        """The work is expected to stop at `step`, before `total` (e.g. when a time budget runs
        out): the time left is counted to there. None: to `total` again."""
        with self._lock:
            self._expected_end = None if step is None else int(step)

    def message(self, text: str) -> None:
        """Writes `text` on a line of its own (below the progress line, which the next refresh
        redraws)."""
        with self._lock:
            self.end_line()
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Stops the heartbeat; shows the last update if it is not on screen yet (unless
        nothing was shown at all: work that ended within `delay`), and ends the line."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._last_render is not None and self._changed:
                self._render(self._clock())
            self.end_line()

    def end_line(self) -> None:
        """Ends the line on screen (dynamic mode) so that other output starts on a new one."""
        with self._lock:
            if self._width:
                self.stream.write("\n")
                self.stream.flush()
                self._width = 0

    def line(self, now: float | None = None) -> str:
        """The text of the display for the latest update."""
        step = self._step or 0
        total = self.total
        head = f"{self.label} {step}/{total}" if total is not None else f"{self.label} {step}"
        parts = [head + (f": {self._status}" if self._status else "")]
        if total is not None and total > 0:
            fraction = min(max(step / total, 0.0), 1.0)
            filled = int(fraction * 20)
            parts.append("[" + "=" * filled + "." * (20 - filled) + f"] {fraction:4.0%}")
        parts += [f"{name}={_format_value(value)}" for name, value in self._values.items()]
        if self.eta and now is not None and self._origin is not None and total is not None:
            began, first = self._origin
            end = total if self._expected_end is None else min(total, self._expected_end)
            if step > first and now > began and step < end:
                remaining = (end - step) * (now - began) / (step - first)
                parts.append(f"ETA {format_seconds(remaining)}")
        if now is not None and self._heartbeat:
            parts.append(f"{format_seconds(now - self._created)} elapsed")
        return " ".join(parts)

    def _maybe_render(self, now: float) -> None:
        if now - self._created < self.delay:
            return
        if self._last_render is None or now - self._last_render >= self.interval:
            self._render(now)

    def _beat(self) -> None:
        # Wake at least as often as the display may refresh (and when `delay` ends).
        period = max(min(self.interval, self.delay or self.interval), 0.05)
        while not self._stopped.wait(period):
            with self._lock:
                if self._step is not None:
                    self._maybe_render(self._clock())

    def _render(self, now: float) -> None:
        if self._last_render is None and self.below is not None:
            self.below.end_line()
        text = self.line(now)
        if self.dynamic:
            padding = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + padding)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_render = now
        self._changed = False
