"""Runs a SavedModel signature the way TF Serving's C++ loader does: TF1 graph + Session.

`python -m keras_mtl.export.tf1_load EXPORT_DIR INPUTS.npz OUTPUTS.npz [SIGNATURE]`

Kept free of keras_mtl and Keras imports, so the check runs in a process that
has only what TF Serving has: TensorFlow, and the tensorflow-text ops library.
"""

from __future__ import annotations

import sys

import numpy as np


def run_signature(export_dir: str, inputs: dict, signature: str = "serving_default") -> dict:
    """Loads `export_dir` in a fresh TF1 graph and runs one signature on `inputs`."""
    import tensorflow as tf

    try:  # TF Serving links the tensorflow-text ops; load them the same way.
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        if signature not in meta.signature_def:
            raise KeyError(
                f"Signature {signature!r} not in the export; it has {sorted(meta.signature_def)}."
            )
        sig = meta.signature_def[signature]
        missing = sorted(set(sig.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(sig.inputs))
        if missing or extra:
            raise KeyError(
                f"Signature {signature!r} takes inputs {sorted(sig.inputs)}; "
                f"missing {missing}, unexpected {extra}."
            )
        feed = {sig.inputs[k].name: v for k, v in inputs.items()}
        fetch = {k: v.name for k, v in sig.outputs.items()}
        return sess.run(fetch, feed_dict=feed)


def main(argv: list[str]) -> int:
    export_dir, inputs_path, outputs_path = argv[:3]
    signature = argv[3] if len(argv) > 3 else "serving_default"
    with np.load(inputs_path, allow_pickle=False) as f:
        inputs = {k: f[k] for k in f.files}
    outputs = run_signature(export_dir, inputs, signature)
    np.savez(outputs_path, **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
