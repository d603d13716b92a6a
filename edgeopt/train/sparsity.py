"""Sparsity during training: zeros that stay zero, and pruning reached gradually.

A kernel holding exact zeros (a pruned model) keeps them: after every step its elements are
multiplied by a fixed mask, so the zeros cannot drift back (under --qat as well: the mask
acts on the float shadow, and zero stays on the int8 grid). Kernels with a sparsity target
are pruned by magnitude while training, following tensorflow-model-optimization's
PolynomialDecay: s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0))^3, updated at a
fixed frequency; here t is training progress (0..1) rather than a step count, since a
time budget may end the run before the planned steps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower import LoweredModel

SCHEDULE_END = 0.7  # progress at which the final sparsity is reached; the rest fine-tunes at it
SCHEDULE_POWER = 3
SCHEDULE_FREQUENCY = 0.05  # masks are recomputed every 5% of progress


def polynomial_sparsity(progress: float, final: float, initial: float = 0.0, end: float = SCHEDULE_END,
                        power: int = SCHEDULE_POWER, frequency: float = SCHEDULE_FREQUENCY) -> float:
    """The sparsity due at `progress`, held constant between updates `frequency` apart."""
    progress = min(np.floor(progress / frequency + 1e-9) * frequency, end)
    return final + (initial - final) * (1 - progress / end) ** power


class KernelMasks:
    """Keep-masks of the kernels that hold zeros or have a sparsity target (by ONNX node name)."""

    def __init__(self, lowered: LoweredModel, targets: dict[str, float] | None = None, scope: str = "layer"):
        targets, self.scope = targets or {}, scope
        self.kernels, self.masks, self.finals = [], [], []
        for step in lowered.steps:
            kernel = step.params.get("kernel")
            if kernel is None:
                continue
            zeros = kernel.numpy() == 0
            if zeros.any() or step.node in targets:
                self.kernels.append(kernel)
                self.masks.append(tf.Variable((~zeros).astype(np.float32), trainable=False, name="keep"))
                self.finals.append(targets.get(step.node))
        self.sparsity = 0.0

    def __bool__(self) -> bool:
        return bool(self.kernels)

    def update(self, progress: float) -> None:
        """Prune the targeted kernels to the sparsity due (outside the training step)."""
        pruned = [(i, final) for i, final in enumerate(self.finals) if final is not None]
        due = [polynomial_sparsity(progress, final) for _, final in pruned]
        if not pruned or max(due) <= self.sparsity:
            return
        from edgeopt.compress.prune import sparsity_masks
        weights = [self.kernels[i].numpy() for i, _ in pruned]
        if self.scope == "global":  # one share for the ranked whole; kernels hold output channels last
            keeps = sparsity_masks(weights, max(due), "global", [-1] * len(weights))
        else:
            keeps = [sparsity_masks([w], share, "layer", [-1])[0] for w, share in zip(weights, due)]
        for (i, _), keep in zip(pruned, keeps):
            self.masks[i].assign(keep.astype(np.float32))
            self.kernels[i].assign(self.kernels[i] * self.masks[i])
        self.sparsity = max(due)

    def hold(self, variable_of: dict) -> None:
        """Zero the masked elements of each kernel (or of the variable trained in its place)."""
        for kernel, mask in zip(self.kernels, self.masks):
            target = variable_of.get(kernel.ref(), kernel)
            target.assign(target * mask)
            if target is not kernel:
                kernel.assign(kernel * mask)
