"""The fastest precision and compilation for the machine at hand: what `"auto"` means.

`TrainerConfig(precision="auto", jit_compile="auto")` (the defaults) and `kerasllm pretrain` /
`finetune` (`--precision auto --jit-compile auto`, the defaults) resolve through `choose`,
from the hardware alone:

| Hardware | precision | XLA |
|---|---|---|
| GPU, compute capability >= 8.0 (A100, H100, RTX 30xx/40xx) | `mixed_bfloat16` | on |
| GPU, compute capability 7.x (V100, T4, RTX 20xx) | `mixed_float16` (loss scaling) | on |
| older GPU | `float32` | on |
| TPU | `mixed_bfloat16` | on (always compiled) |
| CPU with AMX (`amx_bf16`) or AVX-512 BF16 (`avx512_bf16`), oneDNN on | `mixed_bfloat16` | off |
| any other CPU | `float32` | off |

Why, on CPUs (measured by `benchmarks/train_throughput.py`, docs/models.md "Training
throughput: each side at its best"): TensorFlow's default CPU kernels go through oneDNN, which
runs bfloat16 matmuls on the AMX / AVX-512 BF16 units (a 2048 x 2048 matmul on the 2-core
AVX-512 BF16 EPYC: 825 GFLOP/s in bfloat16 against 444 in float32; about 1,100 against 280 on
the AMX Xeon of issue 31), while XLA's CPU backend does not use them (440 GFLOP/s in bfloat16).
Training BERT- and GPT-shaped models there, `mixed_bfloat16` without XLA was the fastest of
the four settings, for ours and for KerasHub, in both runs; XLA lost the bfloat16 gain and
was within noise of graph mode in float32 (so float32 CPUs keep the old default, no XLA;
some models gain from it, e.g. the translation recipe, which sets it). With oneDNN
disabled (`TF_ENABLE_ONEDNN_OPTS=0`) bfloat16 matmuls are no faster than float32 (211 against
218 GFLOP/s), so float32 is chosen. Those facts decide; no timing probe runs at start-up (the
flags named the measured winner; a probe timing a 1024 x 1024 matmul in both precisions costs
0.6 s of every start there):
`matmul_flops` is the probe, for the benchmarks and for checking a new machine by hand.

Generation (`kerasllm.generation.generate`) compiles its decoding loops with XLA on every
device (a loop of small steps, which XLA's fused loop makes several times faster) and runs the
model in its own precision: a bundle loads in float32 (`kerasllm.bundle.float32_config`).

Every GPU of the machine counts: all replicas must run one policy, so the oldest decides.

Example:
>>> choice = choose(cpuinfo="flags\\t: fpu sse avx512f avx512_bf16", gpus=[])
>>> choice.precision, choice.jit_compile
('mixed_bfloat16', False)
>>> choose(cpuinfo="flags\\t: fpu sse", gpus=[{"compute_capability": (7, 5)}]).precision
'mixed_float16'
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: CPU flags (as /proc/cpuinfo spells them) of units that run bfloat16 matmuls natively.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `"auto"` resolves to on one machine.

    Attributes:
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        jit_compile: whether to compile the training step (and generation loops) with XLA.
        device: "cpu", "gpu" or "tpu": the kind of device the choice is for.
        reason: the facts that decided it (flags, compute capability), for the log line.
    """

    precision: str
    jit_compile: bool
    device: str
    reason: str

    @property
    def loss_scaling(self) -> bool:
        """Whether the precision needs dynamic loss scaling (float16's narrow range)."""
        return self.precision == "mixed_float16"

    def describe(self) -> str:
        """One line: the choice and why.

        >>> Choice("float32", False, "cpu", "no bfloat16 unit").describe()
        'auto: precision float32, XLA off on cpu (no bfloat16 unit)'
        """
        xla = "on" if self.jit_compile else "off"
        return f"auto: precision {self.precision}, XLA {xla} on {self.device} ({self.reason})"


def _cpuinfo_field(name: str, cpuinfo: str | None) -> str | None:
    """The value of the first `name` line of `cpuinfo` (the text of /proc/cpuinfo; read from
    the machine when None); None where there is none (e.g. macOS)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags: the first `flags` line of `cpuinfo` (the text of
    /proc/cpuinfo; read from the machine when None; empty where there is none, e.g. macOS).

    >>> sorted(cpu_flags("processor\\t: 0\\nflags\\t\\t: fpu avx512_bf16 amx_tile\\n"))
    ['amx_tile', 'avx512_bf16', 'fpu']
    """
    return frozenset((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The CPU's model name (the first `model name` line of `cpuinfo`, read from the machine
    when None), for benchmark reports; None where there is none.

    >>> cpu_model("processor\\t: 0\\nmodel name\\t: AMD EPYC\\nflags\\t: fpu\\n")
    'AMD EPYC'
    """
    return _cpuinfo_field("model name", cpuinfo)


def onednn_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether TensorFlow's CPU kernels use oneDNN (on by default on x86 Linux since TF 2.9;
    `TF_ENABLE_ONEDNN_OPTS=0` turns it off, and with it the fast bfloat16 matmuls).

    >>> onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "0"}), onednn_enabled({})
    (False, True)
    """
    environ = os.environ if environ is None else environ
    return environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false", "off")


def choose(
    cpuinfo: str | None = None,
    gpus: Sequence[Mapping] | None = None,
    tpu: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Choice:
    """The precision and compilation for the given hardware (see the module's table).

    Args:
        cpuinfo: the text of /proc/cpuinfo (None: this machine's).
        gpus: one details dict per GPU, as `tf.config.experimental.get_device_details`
            returns them (`{"compute_capability": (major, minor), ...}`); None: this machine's.
        tpu: whether the model runs on TPUs.
        environ: the environment (None: `os.environ`), for `TF_ENABLE_ONEDNN_OPTS`.

    >>> choose(cpuinfo="flags: fpu", gpus=[{"compute_capability": (9, 0)}]).describe()
    'auto: precision mixed_bfloat16, XLA on on gpu (compute capability 9.0 >= 8.0)'
    """
    if tpu:
        return Choice("mixed_bfloat16", True, "tpu", "TPUs compute in bfloat16")
    if gpus is None:
        gpus = gpu_details()
    if gpus:
        # The oldest GPU decides: every replica runs the same policy. A GPU whose details do
        # not say (some builds report none) counts as the oldest kind.
        capability = min(tuple(g.get("compute_capability") or (0, 0)) for g in gpus)
        cc = f"compute capability {capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return Choice("mixed_bfloat16", True, "gpu", f"{cc} >= 8.0")
        if capability >= (7, 0):
            return Choice("mixed_float16", True, "gpu", f"{cc}: float16 tensor cores, no bf16")
        return Choice("float32", True, "gpu", f"{cc} < 7.0: no fast half precision")
    flags = cpu_flags(cpuinfo)
    units = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if units and onednn_enabled(environ):
        return Choice(
            "mixed_bfloat16", False, "cpu", f"CPU flags {' '.join(units)}, oneDNN on; XLA's CPU "
            "backend does not use them"
        )  # fmt: skip
    if units:
        return Choice("float32", False, "cpu", "TF_ENABLE_ONEDNN_OPTS=0: no fast bfloat16 kernels")
    return Choice("float32", False, "cpu", f"no CPU flag of {' / '.join(BF16_CPU_FLAGS)}")


def gpu_details() -> list[dict]:
    """The details (`compute_capability`, `device_name`) of each GPU TensorFlow sees."""
    import tensorflow as tf

    return [
        dict(tf.config.experimental.get_device_details(gpu))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


@functools.lru_cache(maxsize=1)
def detect() -> Choice:
    """`choose` for this machine, computed once per process and logged once (one INFO line of
    the `kerasllm.hardware` logger naming the flags that decided it)."""
    import tensorflow as tf

    tpu = bool(tf.config.list_logical_devices("TPU"))
    choice = choose(tpu=tpu)
    logger.info("%s", choice.describe())
    return choice


def resolve(precision: str, jit_compile: bool | str) -> tuple[str, bool, Choice | None]:
    """`precision` and `jit_compile` with any `"auto"` replaced by this machine's `detect()`.

    Returns:
        `(precision, jit_compile, choice)`; `choice` is None when neither was "auto".

    Raises:
        ValueError: a value that is not "auto", a known precision, or a bool (naming the
            argument).

    >>> resolve("float32", False)
    ('float32', False, None)
    """
    check(precision, jit_compile)
    if precision != "auto" and jit_compile != "auto":
        return precision, bool(jit_compile), None
    choice = detect()
    return (
        choice.precision if precision == "auto" else precision,
        choice.jit_compile if jit_compile == "auto" else bool(jit_compile),
        choice,
    )


def check(precision: str, jit_compile: bool | str) -> None:
    """Raises a ValueError naming `precision` or `jit_compile` when it is not allowed.

    >>> check("auto", "auto")
    >>> check("bfloat16", True)
    Traceback (most recent call last):
    ...
    ValueError: `precision` must be one of ['auto', 'float32', 'mixed_bfloat16', \
'mixed_float16']; got 'bfloat16'.
    """
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {['auto', *PRECISIONS]}; got {precision!r}.")
    if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'; got {jit_compile!r}.")


def matmul_flops(
    dtype: str = "float32", jit_compile: bool = False, size: int = 2048, repeats: int = 5
) -> float:
    """FLOP/s of the best of `repeats` `size` x `size` matmuls in `dtype`, with or without XLA:
    the practical peak of this machine for that path (the probe the benchmarks print).

    >>> matmul_flops("bfloat16", size=64, repeats=1) > 0
    True
    """
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    matmul = tf.function(tf.matmul, jit_compile=jit_compile)
    matmul(a, b).numpy()  # trace and compile outside the timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
