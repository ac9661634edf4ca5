"""Gradient Vaccine (Wang et al., ICLR 2021)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting, pairwise_surgery, state_weight, step_seed


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradVac(GradientWeighting):
    """Like PCGrad, but instead of only removing conflicts it pulls each pair's cosine
    similarity up to an adaptive target phi_ij (an EMA of observed similarities, rate `beta`).

    If cos(g_i', g_j) < phi_ij, g_i' += ||g_i'|| (phi sqrt(1-cos^2) - cos sqrt(1-phi^2))
    / (||g_j|| sqrt(1-phi^2)) g_j, which makes the new cosine exactly phi_ij.
    Tracked as coefficients over the original gradients (Gram matrix only);
    applied to all shared variables at once (the paper's "all" granularity).

    Example:
    >>> m = GradVac(beta=0.5); m.task_names = ["a", "b"]; m.build_state(2)
    >>> K = tf.constant([[1.0, -1.0], [-1.0, 2.0]])  # g1=(1,0), g2=(-1,1): cos = -0.707
    >>> [round(float(w), 4) for w in m.aggregate(K, tf.ones(2), True)]  # with target 0: as PCGrad
    [2.0, 1.5]
    """

    key = "gradvac"

    def __init__(self, beta: float = 0.01, mode: str = "parameters", **kwargs):
        if not 0 < beta <= 1:
            raise ValueError(f"GradVac: beta must be in (0, 1], got {beta}.")
        super().__init__(mode=mode, **kwargs)
        self.beta = float(beta)

    def build_state(self, num_tasks):
        self.targets = state_weight(self, "targets", (num_tasks, num_tasks))
        self.step = state_weight(self, "step", (), dtype="int64")

    def aggregate(self, gram, losses, training):
        seed = step_seed(self.step)
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 1e-20))
        targets = tf.identity(self.targets)
        observed = [targets]  # EMA-updated targets, written as pairs are visited

        def vaccinate(i, j, c, gj):
            kc = tf.linalg.matvec(gram, c)
            norm_i = tf.sqrt(tf.maximum(tf.tensordot(c, kc, 1), 1e-20))
            norm_j = tf.gather(norms, j)  # not norms[j]: see keras_mtl.weighting.solvers
            cos = tf.tensordot(kc, gj, 1) / (norm_i * norm_j)
            phi = tf.gather(targets[i], j)
            coef = norm_i * (phi * tf.sqrt(tf.maximum(1.0 - cos**2, 0.0)) - cos * tf.sqrt(1.0 - phi**2)) / (
                norm_j * tf.sqrt(tf.maximum(1.0 - phi**2, 1e-12))
            )
            ema = tf.where(tf.not_equal(i, j), (1.0 - self.beta) * phi + self.beta * cos, phi)
            observed[0] = tf.tensor_scatter_nd_update(observed[0], [[i, j]], [ema])
            return c + tf.where(cos < phi, coef, 0.0) * gj

        weights = pairwise_surgery(gram, self.num_tasks, seed, vaccinate)
        if training:
            self.targets.assign(observed[0])
            self.step.assign_add(1)
        return weights

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}
