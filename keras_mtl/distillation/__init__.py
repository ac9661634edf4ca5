"""Knowledge distillation: train a (smaller) multi-task student on its teachers' outputs.

Teachers are one larger multi-task model, or one model per task (e.g.
single-task models); the student's loss for each distilled task mixes the
label loss with a soft loss against the teacher (`soft_loss`), with a
temperature and a label weight that can anneal from teacher to labels
(`anneal`). Set it at `compile(distillation=Distillation(...))`.

Example:
>>> import keras, keras_mtl as mtl
>>> teacher = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
>>> student = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
>>> student.compile(optimizer="adam", distillation=Distillation(teacher, label_weight=anneal(1000)))
>>> student.distillation.tasks
['a']
"""

from keras_mtl.distillation.distillation import Distillation, anneal
from keras_mtl.distillation.soft_losses import soft_loss

__all__ = ["Distillation", "anneal", "soft_loss"]
