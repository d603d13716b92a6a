"""Empirical bias correction, sequential and layer by layer.

Per-channel int8 weight rounding shifts each output channel's mean; on a MobileNet-class
net it dominates the int8 error (../shared/reference/tflite-lowering.md). Walking the
layers with a float and an int8 stream of calibration samples (edgeopt.quant.sequential),
each conv/FC bias absorbs the mean difference of its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.lower import LoweredModel
from edgeopt.quant.sequential import walk


@dataclass
class Correction:
    node: str
    max_shift: float  # largest |bias change| in the layer


def bias_fix(corrections: list[Correction]):
    """The walk's fix that moves the bias by the mean output error, recording it in `corrections`."""
    def fix(step, rounded, float_out, inputs):
        difference = np.stack([q[0].numpy() - f[0].numpy() for q, f in zip(rounded, float_out)])
        shift = difference.reshape(-1, difference.shape[-1]).mean(axis=0).astype(np.float32)
        step.params["bias"].assign_sub(shift)
        corrections.append(Correction(step.node, float(np.abs(shift).max())))
        return [[q[0] - shift] for q in rounded]
    return fix


def correct_biases(lowered: LoweredModel, feeds: list[dict], ranges: dict | None = None) -> list[Correction]:
    """Adjust the bias variables of `lowered` in place; returns what changed per layer."""
    corrections: list[Correction] = []
    walk(lowered, feeds, ranges or {}, bias_fix(corrections))
    return corrections
