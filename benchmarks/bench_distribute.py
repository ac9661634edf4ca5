"""Step time under tf.distribute strategies, on census-income shared_bottom (issue 6).

Measured in one run, as ratios to the same model trained without a strategy:

* MirroredStrategy on one and on two replicas (two logical CPU devices of
  this machine's one CPU),
* MultiWorkerMirroredStrategy with one and with two worker processes on
  127.0.0.1 (started by this script, one after the other),

each over the same global batches. On a 2-core machine two replicas or two
workers share the cores one replica already uses, so no speed-up is
expected: these figures are the strategies' overhead, not their scaling.

    .venv/bin/python benchmarks/bench_distribute.py [--limit 20000] [--batch-size 1024] [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def ms_per_step(strategy, args) -> float:
    """Mean ms per training step of shared_bottom on census-income, after one warm-up epoch."""
    import keras

    import keras_mtl as mtl

    keras.utils.set_random_seed(0)
    data = mtl.data.census_income(limit=args.limit, batch_size=args.batch_size)
    with strategy.scope():
        model = mtl.models.shared_bottom(
            data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [128, 64])
        )
        model.compile(optimizer="adam")
    model.fit(data.train, epochs=1, verbose=0)  # compiles the step
    steps = len(data.train) * args.epochs
    start = time.perf_counter()
    model.fit(data.train, epochs=1 + args.epochs, initial_epoch=1, verbose=0)
    return (time.perf_counter() - start) * 1000 / steps


def workers(count: int, args) -> float:
    """ms/step of `count` worker processes training together (the chief's figure)."""
    from keras_mtl.distribute import free_ports

    ports = free_ports(count)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for i in range(count):
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", *sys.argv[1:]],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"worker failed:\n{out[-3000:]}")
    return float(outputs[0].strip().splitlines()[-1].split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20000, help="census rows read per file")
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch size")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats of the in-process measurements")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        from keras_mtl import distribute

        strategy = distribute.get_strategy("multi_worker")  # before Keras builds anything
        print("ms/step", ms_per_step(strategy, args))
        return

    import tensorflow as tf

    from keras_mtl import distribute

    distribute.apply_keras_multi_worker_fix()  # Keras' symbolic build and string features, as get_strategy does
    # Two logical devices on the one CPU, before TensorFlow initialises them.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategies = {
        "none (default strategy)": tf.distribute.get_strategy(),
        "MirroredStrategy, 1 replica": tf.distribute.MirroredStrategy(["/cpu:0"]),
        "MirroredStrategy, 2 replicas": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
    times = {name: [] for name in strategies}
    for _ in range(args.repeats):  # alternate, so machine noise hits every setting
        for name, strategy in strategies.items():
            times[name].append(ms_per_step(strategy, args))
    rows = {name: min(t) for name, t in times.items()}
    rows["MultiWorkerMirrored, 1 worker process"] = workers(1, args)
    rows["MultiWorkerMirrored, 2 worker processes"] = workers(2, args)

    base = rows["none (default strategy)"]
    print(f"| setting (global batch {args.batch_size}) | ms/step | vs no strategy |")
    print("|---|---|---|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}x |")
    one, two = rows["MirroredStrategy, 1 replica"], rows["MirroredStrategy, 2 replicas"]
    w1, w2 = rows["MultiWorkerMirrored, 1 worker process"], rows["MultiWorkerMirrored, 2 worker processes"]
    print(f"\nscaling (step time 1 / 2): mirrored {one / two:.2f}x, workers {w1 / w2:.2f}x")


if __name__ == "__main__":
    main()
