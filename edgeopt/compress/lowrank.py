"""lowrank: factorise weight layers into thinner ones where that cuts MACs.

- Gemm/MatMul, and 1x1 Conv: W [K, N] by truncated SVD into [K, r] then [r, N], each taking
  sqrt of the singular values so both factors keep similar ranges (they are quantised apart).
- k x k Conv, whichever is cheaper:
  Tucker-2: 1x1 reduce (C -> r_in), k x k on the reduced channels (r_in -> r_out), 1x1
  restore (r_out -> M); r_in and r_out from the SVDs of the kernel unfolded along its
  input and output channels (higher-order SVD);
  spatial separation: k x 1 (C -> r) then 1 x k (r -> M), the SVD of the kernel
  arranged as [(C, kh), (M, kw)].
The rank is the smallest keeping `energy` of the squared singular values, or a fixed `rank`.
A layer is rewritten only where its MACs drop; at full rank the factorisation is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.compress._layers import (Layer, chosen_layers, conv_attributes, explicit_pads, layer_macs,
                                      replace_with_chain, spatial_size)
from edgeopt.compress._pass import CompressionPass, RefitConfig
from edgeopt.errors import UsageError
from edgeopt.ir import to_bytes
from edgeopt.passes.base import register


@dataclass
class LowRankConfig(RefitConfig):
    energy: float | None = 0.9  # share of squared singular values kept (ignored when rank is given)
    rank: int | None = None  # one rank for every layer
    exclude: list[str] | None = None  # None: the first and the last weight layer
    only_if_cheaper: bool = True  # False: rewrite even where MACs grow (tests: full rank is exact)

    def __post_init__(self):
        if self.rank is not None:
            if self.rank < 1:
                raise UsageError(f"--lowrank-rank {self.rank}: give a rank of 1 or more")
        elif self.energy is None or not 0 < self.energy <= 1:
            raise UsageError(f"--lowrank {self.energy}: give the share of singular-value energy to keep, in (0, 1]",
                             hint="e.g. --lowrank 0.9")


def energy_rank(singular: np.ndarray, energy: float) -> int:
    """The smallest r whose first r squared singular values hold `energy` of their sum."""
    share = np.cumsum(singular.astype(np.float64) ** 2) / max(float(np.sum(singular.astype(np.float64) ** 2)), 1e-30)
    return int(min(np.searchsorted(share, energy - 1e-12) + 1, singular.size))


def svd_split(matrix: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] ~ [K, r] @ [r, N]."""
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def _singular(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(matrix.astype(np.float64), compute_uv=False)


@dataclass
class _Plan:
    chain: list  # (op, weight, attributes) for replace_with_chain
    macs: int
    description: str


def _matrix_plans(layer: Layer, rank) -> list[_Plan]:
    node, w = layer.node, layer.weight
    if node.op_type == "Conv":  # 1x1: [M, C] acting on channels
        matrix, rows = w[:, :, 0, 0].T, spatial_size(node.outputs[0])
        if rows is None or w.shape[2:] != (1, 1) or node.attributes.get_ints("strides", [1, 1]) != [1, 1]:
            return []
    else:
        if node.op_type == "Gemm" and node.attributes.get_int("transA", 0):
            return []
        matrix = w.T if node.op_type == "Gemm" and node.attributes.get_int("transB", 0) else w
        out = node.outputs[0].shape
        if out is None or not out.is_static():
            return []
        rows = math.prod(out) // matrix.shape[1]
    r = rank(_singular(matrix), min(matrix.shape))
    if r is None:
        return []
    first, second = svd_split(matrix, r)
    if node.op_type == "Conv":
        one = {"kernel_shape": [1, 1]}
        chain = [("Conv", first.T[:, :, None, None], one), ("Conv", second.T[:, :, None, None], one)]
    elif node.op_type == "Gemm":
        chain = [("MatMul", first, {}), ("Gemm", second, {"alpha": node.attributes.get_float("alpha", 1.0),
                                                           "beta": node.attributes.get_float("beta", 1.0)})]
    else:
        chain = [("MatMul", first, {}), ("MatMul", second, {})]
    return [_Plan(chain, rows * r * sum(matrix.shape), f"rank {r} of {min(matrix.shape)} (SVD)")]


def _conv_plans(layer: Layer, rank) -> list[_Plan]:
    node, w = layer.node, layer.weight
    m, c, kh, kw = w.shape
    into, out = spatial_size(node.inputs[0]), spatial_size(node.outputs[0])
    if into is None or out is None or not explicit_pads(node):
        return []
    attributes = conv_attributes(node)
    plans = []
    r_out, r_in = rank(_singular(w.reshape(m, -1)), m), rank(_singular(w.transpose(1, 0, 2, 3).reshape(c, -1)), c)
    if r_out is not None and r_in is not None:
        u_out = np.linalg.svd(w.reshape(m, -1).astype(np.float64), full_matrices=False)[0][:, :r_out]
        u_in = np.linalg.svd(w.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64), full_matrices=False)[0][:, :r_in]
        core = np.einsum("mchw,mo,ci->oihw", w.astype(np.float64), u_out, u_in)
        plans.append(_Plan([("Conv", u_in.T[:, :, None, None], {"kernel_shape": [1, 1]}),
                            ("Conv", core, {**attributes, "kernel_shape": [kh, kw]}),
                            ("Conv", u_out[:, :, None, None], {"kernel_shape": [1, 1]})],
                           r_in * c * into + r_out * r_in * kh * kw * out + m * r_out * out,
                           f"Tucker-2 ranks {r_in}/{c} in, {r_out}/{m} out"))
    arranged = w.transpose(1, 2, 0, 3).reshape(c * kh, m * kw)
    r = rank(_singular(arranged), min(arranged.shape))
    if r is not None:
        vertical, horizontal = svd_split(arranged, r)
        (sh, sw), (top, left, bottom, right), (dh, dw) = (attributes[k] for k in ("strides", "pads", "dilations"))
        rows = int(node.outputs[0].shape[2]) * int(node.inputs[0].shape[3])  # the k x 1 conv's output: Ho x W
        plans.append(_Plan([("Conv", vertical.T.reshape(r, c, kh, 1),
                             {"kernel_shape": [kh, 1], "strides": [sh, 1], "pads": [top, 0, bottom, 0],
                              "dilations": [dh, 1]}),
                            ("Conv", horizontal.reshape(r, m, kw).transpose(1, 0, 2)[:, :, None, :],
                             {"kernel_shape": [1, kw], "strides": [1, sw], "pads": [0, left, 0, right],
                              "dilations": [1, dw]})],
                           r * c * kh * rows + m * r * kw * out, f"spatial {kh}x1 + 1x{kw}, rank {r} of {min(arranged.shape)}"))
    return plans


def max_rank(layer: Layer) -> int:
    """The largest rank any factorisation of the layer has."""
    w = layer.weight
    if w.ndim == 4:
        m, c, kh, kw = w.shape
        return max(min(m, c), min(c * kh, m * kw))
    return min(w.shape)


@register
class LowRank(CompressionPass):
    name = "lowrank"
    config_class = LowRankConfig

    @property
    def label(self) -> str:
        return f"--lowrank-rank {self.config.rank}" if self.config.rank else f"--lowrank {self.config.energy:g}"

    def _rank(self, layer: Layer):
        def rank(singular: np.ndarray, limit: int) -> int | None:
            if self.config.rank is None:
                return energy_rank(singular, self.config.energy)
            return self.config.rank if self.config.rank <= limit else None
        return rank

    def apply(self, model: ir.Model) -> list[str]:
        changes, before = [], to_bytes(model)
        for layer in chosen_layers(model, self.config.exclude, "--lowrank-exclude"):
            if layer.groups != 1:
                continue
            kernel = layer.node.op_type == "Conv" and layer.weight.shape[2:] != (1, 1)
            plans = (_conv_plans if kernel else _matrix_plans)(layer, self._rank(layer))
            if self.config.rank is not None and self.config.rank > max_rank(layer):
                raise UsageError(f"--lowrank-rank {self.config.rank}: above the rank {max_rank(layer)} of "
                                 f"{layer.describe()} (weight {list(layer.weight.shape)})",
                                 hint="Give a smaller rank, exclude the layer, or use --lowrank ENERGY.")
            macs = layer_macs(layer)
            best = min(plans, key=lambda p: p.macs, default=None)
            if best is None or macs is None or (self.config.only_if_cheaper and best.macs >= macs):
                continue
            replace_with_chain(layer, best.chain)
            changes.append(f"{layer.describe()}: {best.description}, MACs {macs:,} -> {best.macs:,}")
        return changes + (self.refit(model, before) if changes else [])
