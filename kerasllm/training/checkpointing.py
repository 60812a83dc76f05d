"""Checkpoints: save every N steps, keep the last K, resume from the newest *readable* one, and keep
the best one by a validation metric apart.

Atomicity comes from `tf.train.CheckpointManager`: a checkpoint's data and index files are written
first (into a `ckpt-<n>_temp/` folder, then moved into place) and the `checkpoint` state file (the
list of checkpoints) is rewritten atomically last; older checkpoints are deleted only after that,
so a crash or a full disk while saving leaves the previous checkpoints intact. What an
interrupted save leaves behind (the `ckpt-<n>_temp/` folder, or data files whose index was never
written) is removed when the next run starts, and right away when a save fails, so that a full
disk is not kept full by the failed attempt.

On restore, every candidate is read in full (TensorFlow verifies each tensor's CRC32C) and
matched against the model and optimizer; a truncated or corrupted checkpoint is reported loudly
and the previous one is tried.

`CheckpointError` says in one line what went wrong, where, and what to do, when checkpoints
exist but none can be read (instead of silently starting from scratch) and when a save fails
(the disk is full, the directory is not writable); the command line prints it without a
traceback and exits with a non-zero status.

Model variables are stored in order with their paths (`ModelState`), so a checkpoint of one task
model can also initialize another that shares its backbone (`load_model_weights`); that format
lives in `kerasllm.models.weights` (re-exported here), so that loading weights, as `zoo.get`
does, needs no training code.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasllm.models.weights import (  # noqa: F401  (re-exported: the training API)
    ModelState,
    _read_model_state,
    canonical_path,
    load_model_weights,
    resolve_checkpoint,
    weights_by_path,
)
from kerasllm.utils.files import read_json, write_json

_CKPT_NAME = "ckpt"
_BEST_DIR = "best"
_BEST_FILE = "best.json"
#: The configuration of the model whose checkpoints a model directory holds: written with the
#: first checkpoint, read back to name the differences when a checkpoint does not fit.
MODEL_CONFIG_FILE = "model_config.json"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be saved (a full disk, a directory that is not writable), or
    checkpoints exist in the model directory but none of them can be restored.

    The message is one line that names the problem, the place and what to do; the command line
    (`kerasllm`, `examples/translate.py --train`) prints it without a traceback and exits with
    status 1.
    """


def _warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


# "No space left on device" (ENOSPC) and "Disk quota exceeded" (EDQUOT), as Python and TensorFlow
# word them: TensorFlow turns ENOSPC into a ResourceExhaustedError, which is also what it raises
# when memory runs out, so only the text tells the two apart.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, says that the disk (or quota) is full.

    Example:
    >>> import errno
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_disk_full(OSError(errno.EACCES, "Permission denied"))
    False
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return True
        if isinstance(error, OSError | tf.errors.OpError) and any(
            text in str(error) for text in _DISK_FULL_TEXTS
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def _first_line(error: BaseException) -> str:
    """`error`'s message on one line, without TensorFlow's `{{function_node ...}}` and
    `[Op:...]` decorations."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
    text = re.sub(r"\s*\[Op:\w+\]", "", text).strip()
    lines = text.splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


# What an interrupted save leaves in a manager's directory: TensorFlow writes a checkpoint's
# shards into `<prefix>_temp/` and moves the data files into place before writing the index.
_TEMP_DIR = re.compile(rf"^{_CKPT_NAME}-(\d+)_temp$")
_DATA_FILE = re.compile(rf"^{_CKPT_NAME}-(\d+)\.data-\d+-of-\d+$")


def average_checkpoints(model: keras.Model, paths: list[str | os.PathLike]) -> None:
    """Sets `model`'s weights to the element-wise mean of several training checkpoints' weights.

    Averaging the last few checkpoints of a run is a cheap ensemble that often scores better
    than the last one alone (Vaswani et al. 2017 average the last 5 or 20). Every checkpoint
    must hold exactly the weights of `model` (the same architecture). Floating-point weights
    are averaged in float64 and cast back; other weights (e.g. integer counters) take the
    first checkpoint's values; dropout seed states keep the model's values.

    Args:
        model: the model to set; built, of the architecture the checkpoints were saved from.
        paths: a list of checkpoint prefixes or directories (their newest checkpoint), at
            least one.

    Example:
    >>> import tempfile, numpy as np, keras
    >>> from kerasllm.training import Checkpointer, ModelState
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> directory = tempfile.mkdtemp()
    >>> checkpointer = Checkpointer(directory, {"model": ModelState(model)})
    >>> for step, value in ((1, 1.0), (2, 3.0)):
    ...     model.set_weights([np.full((2, 1), value), np.full((1,), value)])
    ...     _ = checkpointer.save(step)
    >>> average_checkpoints(model, checkpointer.candidates())
    >>> model.get_weights()[0].ravel().tolist()
    [2.0, 2.0]
    """
    if isinstance(paths, str | os.PathLike):
        raise TypeError(f"`paths` must be a list of checkpoints; got the single path {paths!r}.")
    prefixes = [resolve_checkpoint(path) for path in paths]
    if not prefixes:
        raise ValueError("average_checkpoints needs at least one checkpoint; got none.")
    targets = weights_by_path(model)
    values: dict[str, np.ndarray] = {}
    for prefix in prefixes:
        reader, saved = _read_model_state(prefix)
        extra = sorted(set(saved) - set(targets) - {p for p in saved if "seed_generator" in p})
        problems = [f"{p!r} is not a weight of the model" for p in extra[:3]]
        for path, variable in targets.items():
            value = reader.get_tensor(saved[path]) if path in saved else None
            if value is None or tuple(value.shape) != tuple(variable.shape):
                found = "missing" if value is None else f"of shape {tuple(value.shape)}"
                problems.append(f"weight {path!r} {tuple(variable.shape)} is {found} there")
            elif not np.issubdtype(value.dtype, np.floating):
                values.setdefault(path, value)  # not averaged: the first checkpoint's value
            else:
                values[path] = values.get(path, 0.0) + value.astype(np.float64)
        if problems:
            raise ValueError(
                f"Checkpoint {prefix} cannot be averaged into {model.name!r}: "
                + "; ".join(problems[:3])
                + ". Average only checkpoints of the model's own architecture."
            )
    for path, variable in targets.items():
        value = values[path]
        if np.issubdtype(value.dtype, np.floating):
            value = value / len(prefixes)
        variable.assign(np.asarray(value).astype(variable.dtype))


class Checkpointer:
    """Saves and restores the training state in a model directory.

    Args:
        model_dir: the run's directory; checkpoints are `model_dir/ckpt-<step>`.
        state: the trackable objects to save, e.g. `{"model": ModelState(model),
            "optimizer": optimizer, "step": step}`.
        keep: number of recent checkpoints to keep.
        model_config: the model's configuration (`get_config()`), saved beside the
            checkpoints, so that a rerun with another model is told what differs instead of a
            raw variable-mismatch error.
        is_chief: only the chief writes into `model_dir`; other workers write to a temporary
            directory they delete (they must still save, as saving can involve collectives).
        worker_id: used to name the non-chief temporary directory.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        state: dict,
        keep: int = 3,
        is_chief: bool = True,
        worker_id: int = 0,
        model_config: dict | None = None,
    ):
        # Absolute: the state file stores prefixes relative to its directory, which TensorFlow
        # joins back onto the directory name; a relative one would be joined twice on resume.
        self.model_dir = os.path.abspath(os.fspath(model_dir))
        self.is_chief = is_chief
        self.model_config = _plain(model_config) if model_config is not None else None
        self._state = dict(state)
        self.checkpoint = tf.train.Checkpoint(**state)
        directory = self.model_dir if is_chief else self._temp_dir(f"worker_{worker_id}")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=keep, checkpoint_name=_CKPT_NAME
        )
        best_dir = os.path.join(self.model_dir, _BEST_DIR)
        if not is_chief:
            best_dir = self._temp_dir(f"worker_{worker_id}_best")
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, best_dir, max_to_keep=1, checkpoint_name=_CKPT_NAME
        )
        for manager in (self.manager, self.best_manager):
            if is_chief:
                _remove_interrupted_saves(manager.directory)
            elif os.path.isdir(manager.directory):
                # A non-chief worker's directory only ever holds the save in progress; one
                # left over was interrupted.
                shutil.rmtree(manager.directory, ignore_errors=True)

    def _temp_dir(self, name: str) -> str:
        return os.path.join(self.model_dir, ".tmp", name)

    def _cleanup_non_chief(self, manager) -> None:
        if not self.is_chief:
            # Also after a failed save, which may not have created the directory.
            shutil.rmtree(manager.directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # `.tmp` goes once every worker is done
                os.rmdir(os.path.dirname(manager.directory))

    # ------------------------------------------------------------------ saving
    def save(self, step: int) -> str | None:
        """Writes `ckpt-<step>`; returns its prefix on the chief, None on other workers.

        Raises:
            CheckpointError: the checkpoint could not be written (e.g. the disk is full). The
                checkpoints saved before are left intact and the failed one's files removed.
        """
        path = self._save(self.manager, step)
        config_file = Path(self.model_dir) / MODEL_CONFIG_FILE
        if self.is_chief and self.model_config is not None and not config_file.exists():
            try:
                write_json_atomic(config_file, self.model_config)
            except OSError as error:
                _warn(f"Cannot write {config_file} (only used to explain mismatches): {error}")
        return path if self.is_chief else None

    def save_best(self, step: int, metric: str, value: float) -> str | None:
        """Replaces `model_dir/best` with the current state and records the metric.

        Raises:
            CheckpointError: as `save`.
        """
        path = self._save(self.best_manager, step)
        if not self.is_chief:
            return None
        record = {"metric": metric, "value": value, "step": step, "checkpoint": Path(path).name}
        target = Path(self.best_manager.directory) / _BEST_FILE
        try:
            write_json_atomic(target, record)
        except OSError as error:
            what = f"Cannot write the best checkpoint's record {target}"
            raise CheckpointError(self._save_failure(what, str(target.parent), error)) from error
        return path

    def _save(self, manager: tf.train.CheckpointManager, step: int) -> str:
        """`manager.save(step)`, turning a failure into a `CheckpointError` after removing the
        incomplete checkpoint's files, so that a full disk is not kept full by them."""
        prefix = os.path.join(manager.directory, f"{_CKPT_NAME}-{step}")
        # A checkpoint of this number saved earlier (a run resumed from an older checkpoint
        # saves the same numbers again) is never deleted here, even if this save fails.
        existed = os.path.exists(prefix + ".index")
        try:
            return manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as error:
            # The manager records a checkpoint as its latest once its files are complete, then
            # rewrites the state file: if only that failed, the checkpoint is kept (a resume
            # finds it on disk).
            complete = os.path.normpath(manager.latest_checkpoint or "") == prefix
            if self.is_chief:
                _discard_failed_save(manager.directory, step, keep_files=existed or complete)
            if complete:
                what = (
                    f"Checkpoint {prefix} was written but the checkpoint list in "
                    f"{manager.directory} was not updated"
                )
            else:
                what = f"Cannot save checkpoint {prefix}"
            raise CheckpointError(self._save_failure(what, manager.directory, error)) from error
        finally:
            self._cleanup_non_chief(manager)

    def _save_failure(self, what: str, where: str, error: BaseException) -> str:
        """The one-line message of a failed save: `what` failed, in directory `where`."""
        kept = self.manager.latest_checkpoint if self.is_chief else None
        kept = f"the newest is {kept}" if kept else "there were none yet"
        if is_disk_full(error):
            return (
                f"{what}: no space left on device. Checkpoints saved before are intact "
                f"({kept}). Free space on the disk of {where} (or keep fewer checkpoints), "
                "then rerun the same command to resume."
            )
        return (
            f"{what} ({_first_line(error)}). Checkpoints saved before are intact ({kept}). "
            f"Check that {where} exists and is writable, then rerun the same command to resume."
        )

    def best_record(self) -> dict | None:
        """`{"metric", "value", "step", "checkpoint"}` of the best checkpoint, or None."""
        target = Path(self.model_dir) / _BEST_DIR / _BEST_FILE
        if not target.exists():
            return None
        return read_json(target, "best checkpoint record")

    # --------------------------------------------------------------- restoring
    def candidates(self) -> list[str]:
        """Checkpoint prefixes in `model_dir`, newest first: those in the state file plus any
        complete-looking `ckpt-<n>.index` on disk (in case the state file itself is damaged)."""
        found = set()
        try:
            state = tf.train.get_checkpoint_state(self.model_dir)
        except Exception as error:  # a corrupted state file: fall back to the directory listing
            _warn(f"Cannot read the checkpoint state file in {self.model_dir}: {error}")
            state = None
        if state is not None:
            found.update(state.all_model_checkpoint_paths)
            found.add(state.model_checkpoint_path)
        pattern = re.compile(rf"^{_CKPT_NAME}-(\d+)\.index$")
        if os.path.isdir(self.model_dir):
            for name in os.listdir(self.model_dir):
                if pattern.match(name):
                    found.add(os.path.join(self.model_dir, name[: -len(".index")]))
        absolute = {p if os.path.isabs(p) else os.path.join(self.model_dir, p) for p in found}

        def number(prefix):
            match = re.search(r"-(\d+)$", prefix)
            return int(match.group(1)) if match else -1

        return sorted(absolute, key=number, reverse=True)

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint that reads back completely.

        Returns:
            The restored prefix, or None when the model directory has no checkpoint.

        Raises:
            CheckpointError: checkpoints exist but none could be restored.
        """
        candidates = self.candidates()
        failures = []
        for prefix in candidates:
            try:
                self._verify_files(prefix)
                status = self.checkpoint.restore(prefix)
                status.assert_existing_objects_matched()
                for item in self._state.values():
                    if hasattr(item, "verify_restored"):
                        item.verify_restored()
            except Exception as error:  # any read or match failure makes it unusable; say why
                message = str(error).strip().splitlines()[0][:300]
                failures.append(f"{prefix}: {type(error).__name__}: {message}")
                _warn(
                    f"Checkpoint {prefix} is unreadable or does not match the model "
                    f"({type(error).__name__}: {message}); trying the previous checkpoint."
                )
                continue
            if failures:
                _warn(f"Resumed from the older checkpoint {prefix} after skipping {len(failures)}.")
            return prefix
        if candidates:
            difference = self._config_difference()
            if difference:
                raise CheckpointError(
                    f"The checkpoints in {self.model_dir} belong to another model "
                    f"configuration ({difference}), so none could be restored. Use another "
                    "model directory (--model-dir), or the preset and overrides of that run."
                )
            # One line: each checkpoint's own failure was reported above as it was tried.
            raise CheckpointError(
                f"None of the {len(candidates)} checkpoint(s) in {self.model_dir} could be "
                f"restored (the newest, {failures[0]}); they are corrupt or belong to another "
                "model. Refusing to start from scratch: move the ckpt-* files and the "
                "`checkpoint` file out of that directory, or use another model directory."
            )
        return None

    def _config_difference(self) -> str:
        """The keys where the saved model configuration differs from this run's, as
        "key: saved -> now" (nested keys dotted), or "" when unknown or equal."""
        config_file = Path(self.model_dir) / MODEL_CONFIG_FILE
        if self.model_config is None or not config_file.exists():
            return ""
        try:
            saved = read_json(config_file, "saved model configuration")
        except ValueError:
            return ""
        changes = _differences(saved, self.model_config)
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes[:6])
        more = f"; {len(changes) - 6} more" if len(changes) > 6 else ""
        return f"saved -> this run: {shown}{more}" if changes else ""

    @staticmethod
    def _verify_files(prefix: str) -> None:
        """Reads every tensor of the checkpoint, so truncation or bit rot surfaces here (as a
        DataLossError or OutOfRangeError) rather than half-way through a restore."""
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)


def _plain(config: dict) -> dict:
    """`config` as plain JSON values (what the saved file reads back as)."""
    return json.loads(json.dumps(config, default=str))


# Keys that name or place a layer rather than shape its variables.
_IGNORED_KEYS = frozenset({"name", "trainable", "dtype"})


def _differences(saved, now, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, saved value, current value) for every leaf that differs."""
    if isinstance(saved, dict) and isinstance(now, dict):
        found = []
        for key in sorted(set(saved) | set(now)):
            if key in _IGNORED_KEYS:
                continue
            found += _differences(saved.get(key), now.get(key), f"{prefix}{key}.")
        return found
    return [] if saved == now else [(prefix.rstrip("."), saved, now)]


def _remove_interrupted_saves(directory: str) -> None:
    """Removes what interrupted saves of a checkpoint manager left in its `directory`.

    That is `ckpt-<n>_temp/` folders (a save killed while writing) and `ckpt-<n>.data-*` files
    without their `ckpt-<n>.index` (killed between moving the data into place and writing the
    index): such a checkpoint can never be restored, and on a full disk these leftovers kept
    the disk full so that the rerun failed at once. Only names of this manager's checkpoints
    are touched, never another file or folder, nor the data of a checkpoint that has its index.
    """
    if not os.path.isdir(directory):
        return
    names = set(os.listdir(directory))
    for name in sorted(names):
        temp, data = _TEMP_DIR.match(name), _DATA_FILE.match(name)
        path = os.path.join(directory, name)
        temp = temp and os.path.isdir(path)  # TensorFlow makes a folder; leave other things
        orphan = (
            data and f"{_CKPT_NAME}-{data.group(1)}.index" not in names and os.path.isfile(path)
        )
        if (temp or orphan) and _remove(path):
            _warn(f"Removed {path}, left by a checkpoint save that did not complete.")


def _discard_failed_save(directory: str, number: int, keep_files: bool) -> None:
    """Removes the files of checkpoint `number` whose save just failed: its `_temp/` folder,
    and unless `keep_files`, its index and data files (incomplete, and on a full disk they
    hold the space the next save needs)."""
    stem = f"{_CKPT_NAME}-{number}"
    _remove(os.path.join(directory, stem + "_temp"))
    if keep_files:
        return
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        data = _DATA_FILE.match(name)
        if name == stem + ".index" or (data and int(data.group(1)) == number):
            _remove(os.path.join(directory, name))


def _remove(path: str) -> bool:
    """Removes a file or a folder (not a symbolic link's target); whether anything went."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return not os.path.exists(path)
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


def write_json_atomic(path: str | os.PathLike, record) -> None:
    """Writes `record` as indented JSON to `path` so that readers (and a crash) only ever see
    the old file or the complete new one (`kerasllm.utils.files.write_json`)."""
    write_json(path, record, ensure_ascii=True)
