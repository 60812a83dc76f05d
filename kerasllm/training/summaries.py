"""TensorBoard summaries written by the chief only: `model_dir/train` and `model_dir/eval`."""

from __future__ import annotations

import os

import tensorflow as tf


class SummaryWriter:
    """Scalars, text samples and profiler traces for one run.

    Non-chief workers get no-op writers, so every worker can call the same methods.

    Args:
        model_dir: the run's directory.
        is_chief: whether this process writes.

    Example:
    >>> writer = SummaryWriter("/tmp/kerasllm_doc_run")
    >>> writer.scalars("train", {"loss": 1.5}, step=1)
    >>> writer.flush()
    """

    def __init__(self, model_dir: str, is_chief: bool = True):
        self.model_dir = model_dir
        self.is_chief = is_chief
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        self._profiling = False

    def _writer(self, split: str):
        if split not in self._writers:
            self._writers[split] = (
                tf.summary.create_file_writer(os.path.join(self.model_dir, split))
                if self.is_chief
                else tf.summary.create_noop_writer()
            )
        return self._writers[split]

    def scalars(self, split: str, values: dict, step: int) -> None:
        """Writes each `{name: number}` as a scalar summary of `split` ("train" or "eval")."""
        with self._writer(split).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def text(self, split: str, name: str, lines, step: int) -> None:
        """Writes text samples (a string or a list of strings) as one Markdown text summary."""
        if isinstance(lines, str):
            lines = [lines]
        body = "\n\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))
        with self._writer(split).as_default(step=step):
            tf.summary.text(name, body)

    def start_profiler(self) -> None:
        """Starts a TensorBoard profiler trace into `model_dir/train` (chief only)."""
        if self.is_chief and not self._profiling:
            tf.profiler.experimental.start(os.path.join(self.model_dir, "train"))
            self._profiling = True

    def stop_profiler(self) -> None:
        if self._profiling:
            tf.profiler.experimental.stop()
            self._profiling = False

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        self.stop_profiler()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
