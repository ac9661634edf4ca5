"""Op lint: core TensorFlow and tensorflow-text ops pass; Python-only and unknown ops fail, named."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

import keras_mtl as mtl
from keras_mtl import export
from keras_mtl.export import op_lint
from keras_mtl.export.saved_model_pb import read_saved_model

WHITESPACE_OP = "TFText>WhitespaceTokenizeWithOffsetsV2"


class TokenCount(keras.layers.Layer):
    """Counts whitespace tokens with tensorflow-text (an op TF Serving links)."""

    def call(self, text):
        tokens = tf_text.WhitespaceTokenizer().tokenize(text)
        return tf.cast(tokens.row_lengths(), "float32")[:, None]

    def compute_output_shape(self, shape):
        return (shape[0], 1)


class PythonDouble(keras.layers.Layer):
    """Runs Python inside the graph (EagerPyFunc), which TF Serving cannot."""

    def call(self, x):
        y = tf.py_function(lambda a: a * 2.0, [x], tf.float32)
        y.set_shape(x.shape)
        return y


@pytest.fixture(scope="module")
def tf_text_savedmodel(tmp_path_factory):
    """A plain SavedModel (no Keras) whose signature tokenizes with tensorflow-text."""
    module = tf.Module()
    tokenizer = tf_text.WhitespaceTokenizer()
    module.tokens = tf.function(
        lambda text: {"count": tokenizer.tokenize(text).row_lengths()},
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    path = str(tmp_path_factory.mktemp("tftext"))
    tf.saved_model.save(module, path, signatures={"serving_default": module.tokens})
    return path


@pytest.mark.slow
def test_registries_are_read_once_and_split_core_from_tf_text():
    known = op_lint.known_ops()
    assert op_lint.known_ops() is known  # cached per process
    assert {"MatMul", "ParseExampleV2", "HashTableV2", "LookupTableFindV2"} <= known.core
    assert WHITESPACE_OP in known.tensorflow_text
    assert not known.core & known.tensorflow_text
    assert known.tensorflow_text_error is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "op, kind",
    [
        ("MatMul", "core"),
        (WHITESPACE_OP, "tensorflow_text"),
        ("EagerPyFunc", "python"),
        ("PyFunc", "python"),
        ("Addons>ImageProjectiveTransformV3", "unknown"),
        ("MadeUpOp", "unknown"),
    ],
)
def test_classify(op, kind):
    assert op_lint.classify(op) == kind
    assert op_lint.classify(op, allowed_ops=[op]) == "allowed"


@pytest.mark.slow
def test_a_real_export_passes(tmp_path):
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Multiclass("k", 3)])
    path = export.export_saved_model(model, tmp_path)
    report = op_lint.lint(path)
    assert {"MatMul", "Softmax", "ArgMax", "ParseExampleV2"} <= set(report["core"])
    assert report["tensorflow_text"] == [] and report["allowed"] == []
    assert export.read_metadata(path)["ops"] == {"tensorflow_text": [], "allowed": []}
    ops = op_lint.graph_ops(read_saved_model(path))
    assert any(f.startswith("__inference_predict_k") for f in ops["MatMul"])


@pytest.mark.slow
def test_a_tf_text_savedmodel_is_allowed(tf_text_savedmodel):
    assert WHITESPACE_OP in op_lint.lint(tf_text_savedmodel)["tensorflow_text"]


@pytest.mark.slow
def test_a_keras_model_using_tf_text_exports_and_serves(tmp_path):
    text = keras.Input((), dtype="string", name="text")
    model = mtl.models.shared_bottom(
        text, [mtl.tasks.Regression("tokens")], trunk=lambda t: keras.layers.Dense(2)(TokenCount()(t))
    )
    rows = {"text": np.array(["a b c", "d", "e f"], dtype=object)}
    path = export.export_saved_model(model, tmp_path, warmup_samples=rows)
    assert export.read_metadata(path)["ops"]["tensorflow_text"] == [WHITESPACE_OP]
    # The TF1 loader imports tensorflow_text, as TF Serving links it.
    assert export.verify(path, rows, model)["max_abs_diff"] <= 1e-5


def _with_op_renamed(src: str, dst: str, old: str, new: str) -> None:
    shutil.copytree(src, dst)
    proto = read_saved_model(dst)
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == old:
                node.op = new
                renamed += 1
    assert renamed
    with open(os.path.join(dst, "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())


@pytest.mark.slow
def test_an_unknown_op_fails_naming_it_and_where(tf_text_savedmodel, tmp_path):
    edited = str(tmp_path / "edited")
    _with_op_renamed(tf_text_savedmodel, edited, WHITESPACE_OP, "MadeUpOp")
    with pytest.raises(op_lint.OpLintError) as e:
        op_lint.lint(edited)
    message = str(e.value)
    assert "'MadeUpOp' (neither core TensorFlow" in message and "nor tensorflow-text" in message
    assert "used in __inference_<lambda>_" in message
    assert WHITESPACE_OP not in message  # only the offending op is named
    report = op_lint.lint(edited, allowed_ops=["MadeUpOp"])
    assert report["allowed"] == ["MadeUpOp"] and report["tensorflow_text"] == []


@pytest.mark.slow
def test_a_python_op_fails_the_export_and_writes_nothing(tmp_path):
    model = mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [mtl.tasks.Binary("a")], trunk=lambda t: PythonDouble()(t)
    )
    with pytest.raises(op_lint.OpLintError, match="'EagerPyFunc' \\(runs Python code, and TF Serving has no Python") as e:
        export.export_saved_model(model, tmp_path / "m")
    assert "used in __inference_predict_a_" in str(e.value) and "__inference_serving_default_" in str(e.value)
    assert f"as {tmp_path / 'm' / '1'} (not written)" in str(e.value)
    assert os.listdir(tmp_path / "m") == [] and export.versions(tmp_path / "m") == []
    # A server build that links the op can take it.
    path = export.export_saved_model(model, tmp_path / "m", allowed_ops=["EagerPyFunc"])
    assert export.read_metadata(path)["ops"]["allowed"] == ["EagerPyFunc"]
