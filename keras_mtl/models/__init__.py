"""Architectures: factories that return a `keras_mtl.MultiTaskModel`."""

from keras_mtl.models.shared_bottom import shared_bottom
from keras_mtl.models.single_task import single_task

ARCHITECTURES = {"shared_bottom": shared_bottom, "single_task": single_task}

__all__ = ["shared_bottom", "single_task", "ARCHITECTURES"]
