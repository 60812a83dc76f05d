"""Distribution strategies by name, and which worker is the chief."""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {raw[:200]!r}") from None


def _num_workers(tf_config: dict) -> int:
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def resolve_name(name: str = "auto") -> str:
    """The strategy name `get_strategy(name)` builds: "auto" resolved for this machine (see
    `get_strategy`), any other name checked and returned. Builds no strategy.

    Example:
    >>> resolve_name("mirrored")
    'mirrored'
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}.")
    if name != "auto":
        return name
    # Decide multi-worker before touching devices: collectives must be configured before the
    # TensorFlow runtime initializes.
    if _num_workers(_tf_config()) > 1:
        return "multi_worker_mirrored"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def get_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """Builds a `tf.distribute.Strategy` from a name.

    Args:
        name: "one_device" (the first GPU, else the CPU), "mirrored" (every local GPU, or every
            logical CPU device when there is no GPU), "multi_worker_mirrored" (workers from
            `TF_CONFIG`), "tpu", or "auto": multi-worker when `TF_CONFIG` names more than one
            worker, mirrored with more than one GPU, one device otherwise.
        tpu: the TPU address for "tpu" (default: the environment's TPU).

    Returns:
        The strategy. Build models inside its `scope()`.

    Example:
    >>> get_strategy("one_device").num_replicas_in_sync
    1
    """
    name = resolve_name(name)
    tf_config = _tf_config()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        if not tf_config:
            raise ValueError(
                "strategy='multi_worker_mirrored' needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}).'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_info(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process; (None, 0) outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes checkpoints and summaries.

    The chief is task "chief", or worker 0 when the cluster has no "chief" task.
    """
    task_type, task_id = worker_info(strategy)
    if task_type is None or task_type == "chief":
        return True
    if task_type == "worker":
        cluster = strategy.cluster_resolver.cluster_spec().as_dict()
        return "chief" not in cluster and task_id == 0
    return False  # evaluators and parameter servers
