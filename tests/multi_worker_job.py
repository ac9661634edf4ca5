"""A training job run by tests/test_distribute.py as a worker process (or alone, as the reference).

    python tests/multi_worker_job.py OUT.npz [INDEX PORT0,PORT1]

With INDEX and ports it joins a two-worker MultiWorkerMirroredStrategy
cluster on 127.0.0.1; without, it trains in one process. Either way it
trains the same model on the same global batches and saves its weights.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv):
    out = argv[0]
    if len(argv) > 1:
        index, ports = int(argv[1]), argv[2].split(",")
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        )
    from keras_mtl import distribute

    # The strategy must exist before Keras builds anything.
    strategy = distribute.get_strategy("auto")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_mtl as mtl

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1] * 2.0}
    y["a"][::3] = -1  # labels missing unevenly across workers
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = mtl.models.shared_bottom(
            keras.Input((5,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")], trunk=mtl.trunks.mlp([8])
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), weighting=os.environ.get("WEIGHTING", "fixed"))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).with_options(mtl.data.pipeline_options())
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False, validation_data=ds).history
    # Evaluation metrics over workers whose shares hold different numbers of labels.
    logs = model.evaluate(ds, verbose=0, return_dict=True)
    np.savez(
        out, *model.get_weights(), loss=np.array(history["loss"]),
        val_a_accuracy=np.array(history["val_a_accuracy"]), **{f"eval_{k}": np.array(v) for k, v in logs.items()},
    )
    print("strategy:", type(strategy).__name__, "replicas:", strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main(sys.argv[1:])
