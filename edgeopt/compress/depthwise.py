"""depthwise: a standard k x k Conv becomes a depthwise k x k Conv (one filter per input
channel) and a pointwise 1x1 Conv, as in MobileNets.

Each input channel's slice of the kernel, W[:, c] as an [M, k*k] matrix, is replaced by its
best rank-1 approximation p_c d_c^T (its leading singular pair): the depthwise filter of
channel c is d_c and the pointwise weights from channel c are p_c. That is exact when every
slice is rank 1 (a separable kernel) and the best start for fine-tuning otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.compress._layers import (chosen_layers, conv_attributes, explicit_pads, layer_macs, replace_with_chain,
                                      spatial_size)
from edgeopt.compress._pass import CompressionPass, RefitConfig
from edgeopt.ir import to_bytes
from edgeopt.passes.base import register


@dataclass
class DepthwiseConfig(RefitConfig):
    exclude: list[str] | None = None  # None: the first and the last weight layer


def separate(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[M, C, kh, kw] -> (depthwise [C, 1, kh, kw], pointwise [M, C, 1, 1])."""
    m, c, kh, kw = weight.shape
    depthwise, pointwise = np.zeros((c, 1, kh, kw)), np.zeros((m, c, 1, 1))
    for channel in range(c):
        u, s, vt = np.linalg.svd(weight[:, channel].reshape(m, kh * kw).astype(np.float64), full_matrices=False)
        root = np.sqrt(s[0])
        depthwise[channel, 0] = (root * vt[0]).reshape(kh, kw)
        pointwise[:, channel, 0, 0] = root * u[:, 0]
    return depthwise, pointwise


@register
class Depthwise(CompressionPass):
    name = "depthwise"
    config_class = DepthwiseConfig

    @property
    def label(self) -> str:
        return "--depthwise"

    def apply(self, model: ir.Model) -> list[str]:
        changes, before = [], to_bytes(model)
        for layer in chosen_layers(model, self.config.exclude, "--depthwise-exclude"):
            node, w = layer.node, layer.weight
            if node.op_type != "Conv" or layer.groups != 1 or w.ndim != 4 or w.shape[2:] == (1, 1):
                continue
            out, macs = spatial_size(node.outputs[0]), layer_macs(layer)
            if out is None or macs is None or not explicit_pads(node):
                continue
            m, c, kh, kw = w.shape
            after = c * kh * kw * out + m * c * out
            if after >= macs:
                continue
            depthwise, pointwise = separate(w)
            replace_with_chain(layer, [("Conv", depthwise, {**conv_attributes(node), "kernel_shape": [kh, kw],
                                                            "group": c}),
                                       ("Conv", pointwise, {"kernel_shape": [1, 1]})])
            changes.append(f"{layer.describe()}: depthwise {kh}x{kw} on {c} channels + pointwise {c}->{m}, "
                           f"MACs {macs:,} -> {after:,}")
        return changes + (self.refit(model, before) if changes else [])
