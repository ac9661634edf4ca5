"""Trains every weighting method XLA-compiled for a few steps and marks each in the log.

Run by tests/test_xla_recompile.py with TensorFlow's XLA compile log on; the
test counts how often each method's step was compiled. Equal batch shapes and
a compiled step that does not depend on data values must compile once.
"""

import sys

import keras
import numpy as np

import keras_mtl as mtl


def configurations(names):
    for name in names:
        method = mtl.weighting.get(name)
        modes = method.modes if method.uses_gradients else (None,)
        for mode in modes:
            # Three tasks reach the loops and random task orders; two tasks
            # the closed forms (MGDA, CAGrad).
            for num_tasks in ((2, 3) if name in ("mgda", "cagrad") else (3,)):
                yield name, mode, num_tasks


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    labels = {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": x[:, 1:2],
        "c": (x[:, 2] + x[:, 3] > 0).astype("float32"),
    }
    all_tasks = [mtl.tasks.Binary("a"), mtl.tasks.Regression("b"), mtl.tasks.Binary("c")]
    for name, mode, num_tasks in configurations(sys.argv[1:] or mtl.weighting.available()):
        tasks = all_tasks[:num_tasks]
        keras.utils.set_random_seed(0)
        model = mtl.models.shared_bottom(keras.Input((6,)), tasks, trunk=mtl.trunks.mlp([8]))
        kwargs = {"mode": mode} if mode else {}
        model.compile(optimizer="adam", weighting=mtl.weighting.get(name, **kwargs), jit_compile=True)
        print(f"CONFIG {name} {mode} {num_tasks}", file=sys.stderr, flush=True)
        model.fit(x, {t.name: labels[t.name] for t in tasks}, batch_size=32, epochs=2, shuffle=True, verbose=0)
    print("DONE", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
