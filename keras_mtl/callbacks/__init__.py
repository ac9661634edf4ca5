"""Callbacks for multi-task training: per-task TensorBoard logging, probes, guards and crash-safe checkpoints.

`keras.callbacks.TensorBoard` already logs every log key (`income_loss`,
`income_auc`, `income_weight`, ...) as `epoch_<key>`. These callbacks add:

- `TaskScalars`: the same values regrouped per task (`income/loss`,
  `income/auc`, `income/weight`, ...) so each task's charts sit together,
  plus the learning rate;
- `GradientConflict`: every N steps, on a fixed probe batch, each task's
  gradient norm on the shared variables, the cosine between every pair of
  task gradients (below 0: conflict), the running share of checks with any
  conflict, and the cosine matrix as an image;
- `TaskAffinity`: every N steps, the lookahead affinity of Fifty et al.
  (2021), averaged over the run, logged, saved as `affinity.json`, with
  suggested task groupings;
- `ExpertUtilisation`: for MoE models (MMoE, CGC, PLE), each epoch, the
  gate × expert mean gate weights as a heatmap image, and `experts.json`.

All write to `<log_dir>/mtl`, off the training step: a probe costs one
forward and T backward passes on one batch, an affinity check T more
forward passes. They write with `keras_mtl._events` (summary protos built
from numpy, no TensorFlow ops per value). `monitoring()` returns them with
`LeanTensorBoard`, Keras' TensorBoard without its idle per-step cost.

Beside Keras' own callbacks, with names that say how they differ:

| keras_mtl                 | Keras                              | difference |
|---------------------------|------------------------------------|------------|
| `LeanTensorBoard`         | `keras.callbacks.TensorBoard`      | no per-step work when logging per epoch |
| `StopOnNonFiniteLoss`     | `keras.callbacks.TerminateOnNaN`   | names the task(s) and step; checks weights |
| `AtomicModelCheckpoint`   | `keras.callbacks.ModelCheckpoint`  | files written atomically |
| `AtomicBackupAndRestore`  | `keras.callbacks.BackupAndRestore` | backups survive a kill mid-write |

`BestPerTask` keeps each task's best epoch (by its own validation metric)
in memory and `assemble()`s one model from them: every task's own layers
from its best epoch, the shared ones from an epoch you choose.

`SetEpoch` keeps a shuffled keras_mtl dataset's order a function of the
epoch; `MultiTaskModel.fit` adds it by itself.
"""

from keras_mtl.callbacks.atomic_backup_and_restore import AtomicBackupAndRestore
from keras_mtl.callbacks.atomic_model_checkpoint import AtomicModelCheckpoint
from keras_mtl.callbacks.best_per_task import BestPerTask
from keras_mtl.callbacks.default_monitoring import monitoring
from keras_mtl.callbacks.expert_utilisation import ExpertUtilisation
from keras_mtl.callbacks.gradient_conflict import GradientConflict
from keras_mtl.callbacks.lean_tensorboard import LeanTensorBoard
from keras_mtl.callbacks.per_task_early_stopping import PerTaskEarlyStopping
from keras_mtl.callbacks.set_epoch import SetEpoch
from keras_mtl.callbacks.stop_on_non_finite_loss import StopOnNonFiniteLoss
from keras_mtl.callbacks.task_affinity import TaskAffinity
from keras_mtl.callbacks.task_scalars import TaskScalars

__all__ = [
    "AtomicBackupAndRestore",
    "AtomicModelCheckpoint",
    "BestPerTask",
    "ExpertUtilisation",
    "GradientConflict",
    "LeanTensorBoard",
    "PerTaskEarlyStopping",
    "SetEpoch",
    "StopOnNonFiniteLoss",
    "TaskAffinity",
    "TaskScalars",
    "monitoring",
]
