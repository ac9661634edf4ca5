"""Strategy selection, and the fix that lets Keras 3 `fit` run under MultiWorkerMirroredStrategy.

Create the strategy first, before Keras builds any model or optimizer, then
build and compile inside `strategy.scope()`:

    strategy = keras_mtl.distribute.get_strategy()        # "auto"
    with strategy.scope():
        model = ...; model.compile(...)
    model.fit(dataset)          # batches are GLOBAL batches, split across replicas

Batch sizes are always global: a dataset batched at 1024 under 4 replicas
gives each replica 256 examples per step, and the result equals one device
training on batches of 1024 (see `keras_mtl._masking` for why it is exact).
"""

from __future__ import annotations

import json
import os
import socket

import keras
import tensorflow as tf

from keras_mtl import _compat

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def free_ports(n: int) -> list[int]:
    """`n` TCP ports free on 127.0.0.1 right now, for the workers of a local multi-worker run.

    Example:
    >>> len(set(free_ports(2)))
    2
    """
    # All sockets stay open until every port is known, so the n ports differ.
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ValueError("TF_CONFIG must be a JSON object with 'cluster' and 'task'.")
    return config


def _cluster_size(config: dict) -> int:
    cluster = config.get("cluster") or {}
    return sum(len(v) for k, v in cluster.items() if k in ("worker", "chief"))


def resolve(name: str = "auto") -> str:
    """Which strategy `get_strategy(name)` builds, without building it.

    `auto`: `tpu` if a TPU cluster resolves (`TPU_NAME` set or a Cloud TPU VM),
    `multi_worker` if `TF_CONFIG` names a cluster of two or more workers,
    `mirrored` if there is more than one GPU, else `default`.

    Example:
    >>> resolve("mirrored")
    'mirrored'
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}. (ParameterServerStrategy "
            "is not offered: Keras 3's fit does not support it.)"
        )
    if name != "auto":
        return name
    if os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0"):
        return "tpu"
    if _cluster_size(_tf_config()) > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Builds the `tf.distribute` strategy `name` (see `resolve`) and readies Keras for it.

    Example:
    >>> type(get_strategy("default")).__name__
    '_DefaultDistributionStrategy'
    """
    kind = resolve(name)
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        # Keras' symbolic build also fails under MirroredStrategy when a batch
        # has string features (it averages the replicas' batches): same fix.
        apply_keras_multi_worker_fix()
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        config = _tf_config()
        if _cluster_size(config) < 1 or "task" not in config:
            raise ValueError(
                "strategy 'multi_worker' needs TF_CONFIG with a 'cluster' of workers and this "
                'process\'s \'task\', e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        apply_keras_multi_worker_fix()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


# --------------------------------------------------------------------------
# Keras 3 fit under MultiWorkerMirroredStrategy (keras-team/keras#20585): two
# functions of Keras' TF trainer break (see `keras_mtl._compat.patch_multi_worker_fit`,
# which replaces them). Applied only to the Keras versions known to need it.
# 3.16 is an assumption, not a checked fact: no 3.16 was released when this was
# written (2026-12) and #20585 is open; setup.cfg pins keras < 3.16 until then.
_FIXED_KERAS = (3, 16)
_applied = False


def keras_needs_fix() -> bool:
    """True for the Keras versions whose `fit` breaks under MultiWorkerMirroredStrategy.

    Example:
    >>> isinstance(keras_needs_fix(), bool)
    True
    """
    version = tuple(int(p) for p in keras.__version__.split(".")[:2])
    return version < _FIXED_KERAS


def apply_keras_multi_worker_fix() -> bool:
    """Patches the two multi-worker failures of Keras `fit` (idempotent); returns whether it patched."""
    global _applied
    if _applied or not keras_needs_fix():
        return _applied
    _compat.patch_multi_worker_fit()
    _applied = True
    return True


__all__ = ["STRATEGIES", "apply_keras_multi_worker_fix", "free_ports", "get_strategy", "keras_needs_fix", "resolve"]
