"""Architectures: factories that return a `keras_mtl.MultiTaskModel`."""

from keras_mtl.models.cgc import cgc
from keras_mtl.models.cross_stitch import cross_stitch
from keras_mtl.models.mmoe import mmoe
from keras_mtl.models.ple import ple
from keras_mtl.models.shared_bottom import shared_bottom
from keras_mtl.models.single_task import single_task
from keras_mtl.models.soft_sharing import soft_sharing

ARCHITECTURES = {
    "shared_bottom": shared_bottom,
    "single_task": single_task,
    "mmoe": mmoe,
    "cgc": cgc,
    "ple": ple,
    "cross_stitch": cross_stitch,
    "soft_sharing": soft_sharing,
}

__all__ = [
    "ARCHITECTURES",
    "cgc",
    "cross_stitch",
    "mmoe",
    "ple",
    "shared_bottom",
    "single_task",
    "soft_sharing",
]
