"""`Progress`: the trainer's progress display, refreshed by wall-clock time.

On a terminal it is one line rewritten in place (a carriage return, then the line padded with
spaces over the previous one: no ANSI escape codes) about every second. When the output is not
a terminal (a log file, a pipe, a batch system), rewriting in place would fill the file with
carriage returns, so it writes a plain line, ended by a newline, about every 15 seconds.
Either way it never refreshes more often than that, however often it is updated, and it always
shows the last update when the run ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

#: Seconds between refreshes on a terminal, and of plain lines otherwise.
TERMINAL_INTERVAL = 1.0
PLAIN_INTERVAL = 15.0


def _format_value(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Shows `step/total`, a bar, the latest metrics and the time left, refreshed by time.

    Args:
        total: the step at which the run ends.
        stream: where to write (default: `sys.stdout` at construction).
        dynamic: rewrite one line in place (True) or write plain lines (False); by default,
            whether `stream` is a terminal.
        interval: seconds between refreshes; by default `TERMINAL_INTERVAL` when dynamic,
            else `PLAIN_INTERVAL`.
        clock: the time source (seconds), replaceable in tests.

    Example:
    >>> import io
    >>> out = io.StringIO()
    >>> progress = Progress(100, stream=out, dynamic=False, interval=0)
    >>> progress.update(50, {"loss": 2.5})
    >>> progress.close()
    >>> out.getvalue().splitlines()[0].startswith("step 50/100")
    True
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        dynamic: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        if dynamic is None:
            isatty = getattr(self.stream, "isatty", None)
            dynamic = bool(isatty and isatty())
        self.dynamic = dynamic
        self.interval = (
            interval if interval is not None else (TERMINAL_INTERVAL if dynamic else PLAIN_INTERVAL)
        )
        self._clock = clock
        self._values: dict[str, float] = {}
        self._step: int | None = None
        self._shown_step: int | None = None
        self._last_render: float | None = None
        self._width = 0  # length of the line on screen (dynamic mode), 0 when none is
        self._origin: tuple[float, int] | None = None  # (time, step) of the first update

    def update(self, step: int, values: Mapping[str, float] | None = None) -> None:
        """Records `step` and the latest `values` (they replace earlier ones of the same
        name); refreshes the display if `interval` has passed since the last refresh."""
        now = self._clock()
        if self._origin is None:
            self._origin = (now, step)
        self._step = step
        if values:
            self._values.update({name: float(value) for name, value in values.items()})
        if self._last_render is None or now - self._last_render >= self.interval:
            self._render(now)

    def message(self, text: str) -> None:
        """Writes `text` on a line of its own (below the progress line, which the next refresh
        redraws)."""
        self._end_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Shows the last update if it is not on screen yet, and ends the line."""
        if self._step is not None and self._step != self._shown_step:
            self._render(self._clock())
        self._end_line()

    def _end_line(self) -> None:
        if self._width:
            self.stream.write("\n")
            self._width = 0

    def line(self, now: float | None = None) -> str:
        """The text of the display for the latest update."""
        step = self._step or 0
        parts = [f"step {step}/{self.total}"]
        if self.total > 0:
            fraction = min(max(step / self.total, 0.0), 1.0)
            filled = int(fraction * 20)
            parts.append("[" + "=" * filled + "." * (20 - filled) + f"] {fraction:4.0%}")
        parts += [f"{name}={_format_value(value)}" for name, value in self._values.items()]
        if now is not None and self._origin is not None:
            began, first = self._origin
            if step > first and now > began and step < self.total:
                remaining = (self.total - step) * (now - began) / (step - first)
                parts.append(f"ETA {_format_seconds(remaining)}")
        return " ".join(parts)

    def _render(self, now: float) -> None:
        text = self.line(now)
        if self.dynamic:
            padding = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + padding)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_render = now
        self._shown_step = self._step
