"""Per-task LoRA: each task its own low-rank adapters on one frozen pretrained backbone.

`trunks.pretrained(..., train="task_lora")` builds this. The backbone's
adapted layers (the attention query and value projections, the layers
KerasHub's `enable_lora` would adapt) compute, for task `t`,

    y = W x + b + (A_t B_t) x

with `W`, `b` frozen and shared by every task, and `A_t`, `B_t` (rank `r`)
task `t`'s own: LoRA (Hu et al., 2021) with one adapter set per task. The
adapters live in one layer per task, `<task>_lora` (`TaskAdapters`), so a
task's adapters are its own layer in the model: training task A never moves
task B's adapters or outputs, freezing a task freezes its adapters, and a
task added to a trained model (`models.extend`) adds only its adapters and
head. Each task takes its own pass through the backbone (its activations
differ from the first adapted layer on); the text is tokenized once.
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from keras_mtl import _compat


@keras.saving.register_keras_serializable(package="keras_mtl")
class TaskAdapters(keras.layers.Layer):
    """One task's LoRA adapters: for each adapted backbone layer, `A` (He-uniform) and `B` (zeros).

    Called on the model's input (only to place it in the graph), it returns
    the adapters' kernel updates `A @ B * (alpha / rank)`, one per adapted
    layer, shaped like that layer's kernel; the encoder adds `x @ update` to
    the layer's frozen output. With `B` zero at the start, the task starts
    from the pretrained backbone's outputs, as in LoRA.

    Example:
    >>> import keras
    >>> adapters = TaskAdapters([[8, 2, 4]], rank=2, name="sentiment_lora")
    >>> [tuple(u.shape) for u in adapters(keras.ops.zeros((3,)))], len(adapters.trainable_weights)
    ([(8, 2, 4)], 2)
    """

    def __init__(self, shapes, rank: int = 4, alpha: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.shapes = [[int(d) for d in shape] for shape in shapes]
        self.rank = int(rank)
        self.alpha = float(self.rank if alpha is None else alpha)
        self.kernels = []
        for i, shape in enumerate(self.shapes):
            # Float32 like Keras' own LoRA kernels, whatever the compute dtype.
            a = self.add_weight(
                name=f"lora_kernel_a_{i}", shape=(*shape[:-1], self.rank),
                initializer=keras.initializers.HeUniform(), dtype="float32",
            )
            b = self.add_weight(
                name=f"lora_kernel_b_{i}", shape=(self.rank, shape[-1]), initializer="zeros", dtype="float32"
            )
            self.kernels.append((a, b))
        self.built = True

    def call(self, inputs):
        scale = self.alpha / self.rank
        return [ops.matmul(a, b) * scale for a, b in self.kernels]

    def compute_output_spec(self, inputs):
        # Read under the layer's autocast: in its compute dtype (bfloat16 under mixed precision).
        return [keras.KerasTensor(tuple(shape), dtype=self.compute_dtype) for shape in self.shapes]

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes, "rank": self.rank, "alpha": self.alpha}


class AdapterSwitch:
    """Adds the active task's kernel updates to the backbone's adapted layers' outputs.

    Each adapted layer's `call` is wrapped (on that layer only) to add
    `x @ update[i]` while a task is active (`with switch.active(updates):`
    around the backbone call) and to run unchanged otherwise. The layers
    must be linear in their kernel after the bias: `EinsumDense` or `Dense`
    without an activation, as KerasHub's attention projections are.
    """

    def __init__(self, layers: list):
        self.layers = layers
        self.updates = None
        for index, layer in enumerate(layers):
            _compat.wrap_call(layer, self._adapted(layer, index))

    def _adapted(self, layer, index):
        equation = getattr(layer, "equation", None)

        def wrap(call):
            def adapted_call(inputs, *args, **kwargs):
                outputs = call(inputs, *args, **kwargs)
                if self.updates is None:
                    return outputs
                update = ops.cast(self.updates[index], inputs.dtype)
                delta = ops.einsum(equation, inputs, update) if equation else ops.matmul(inputs, update)
                return outputs + delta

            return adapted_call

        return wrap

    @contextlib.contextmanager
    def active(self, updates):
        """Within the block, the adapted layers add `updates` (one per layer, in order)."""
        self.updates = list(updates)
        try:
            yield
        finally:
            self.updates = None


def check_targets(backbone, layers: list) -> None:
    """Raises naming the layer unless each target is a Dense/EinsumDense with a kernel and no activation."""
    linear = keras.activations.get(None)
    for layer in layers:
        if not isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) or layer.activation not in (None, linear):
            raise ValueError(
                f"trunks.pretrained: train='task_lora' adapts Dense/EinsumDense layers without an activation; "
                f"layer {layer.name!r} of backbone {backbone.name!r} is a {type(layer).__name__}"
                f"{' with an activation' if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) else ''}."
            )


def encode_per_task(encoder, strings, names, rank: int) -> dict:
    """`{task: {"pooled", "sequence"}}`: new adapters `<task>_lora` for each name, then the encoder's pass per task."""
    return {
        name: encoder(strings, adapters=TaskAdapters(encoder.adapter_shapes(), rank=rank, name=f"{name}_lora")(strings))
        for name in names
    }
