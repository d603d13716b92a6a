"""split-fully-connected: a Gemm/MatMul with a large constant weight becomes several narrower
ones side by side, joined by a Concat on the last axis.

The Edge TPU caches parameters on chip op by op; a single layer larger than what is left of
the cache is streamed from host memory whole on every inference (and very large single
layers are a known trigger of "Internal compiler error", google-coral/edgetpu#148). Pieces of
at most `max_weight_bytes` int8 weights fill the cache as far as it goes. Each output column
keeps its own weights and bias, so the float function is unchanged; in int8 each piece gets
its own output range, which the Concat then requantizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import add_initializer, constant_array, is_onnx_op, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, PassConfig, register


@dataclass
class SplitFullyConnectedConfig(PassConfig):
    max_weight_bytes: int = 1 << 20  # int8 weight bytes per piece
    nodes: list[str] | None = None  # only these nodes; None: every one over the limit


def _weight(node: ir.Node) -> np.ndarray | None:
    """The constant weight as [K, N], when `node` can split."""
    weight = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight is None or weight.ndim != 2:
        return None
    if is_onnx_op(node, "MatMul"):
        return weight
    if is_onnx_op(node, "Gemm") and not node.attributes.get_int("transA", 0):
        kn = weight.T if node.attributes.get_int("transB", 0) else weight
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if bias is not None and constant_array(bias) is None:
            return None
        return kn
    return None


def _piece(graph: ir.Graph, node: ir.Node, kn: np.ndarray, columns: slice, index: int) -> ir.Node:
    name = f"{node.name}.{index}"
    inputs: list[ir.Value | None] = list(node.inputs)
    weight = kn[:, columns].T if is_onnx_op(node, "Gemm") and node.attributes.get_int("transB", 0) else kn[:, columns]
    inputs[1] = add_initializer(graph, np.ascontiguousarray(weight), f"{name}.weight")
    bias = constant_array(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else None
    if bias is not None and bias.ndim and bias.shape[-1] > 1:
        inputs[2] = add_initializer(graph, np.ascontiguousarray(bias[..., columns]), f"{name}.bias")
    attributes = {k: a.value for k, a in node.attributes.items()}
    return ir.node(node.op_type, inputs, attributes, name=name)


@register
class SplitFullyConnected(Pass):
    name = "split-fully-connected"
    config_class = SplitFullyConnectedConfig

    def apply(self, model: ir.Model) -> list[str]:
        graph, limit, wanted = model.graph, self.config.max_weight_bytes, self.config.nodes
        changes = []
        for node in list(graph):
            kn = _weight(node)
            if kn is None or (wanted is not None and node.name not in wanted):
                continue
            columns = kn.shape[1]
            pieces = math.ceil(kn.size / limit)
            if pieces < 2:
                continue
            width = math.ceil(columns / pieces)
            parts = [_piece(graph, node, kn, slice(start, start + width), i)
                     for i, start in enumerate(range(0, columns, width))]
            concat = ir.node("Concat", [p.outputs[0] for p in parts], {"axis": -1}, name=f"{node.name}.concat")
            graph.insert_before(node, [*parts, concat])
            replace_value(node.outputs[0], concat.outputs[0], take_name=True)
            constants = list(node.inputs[1:])
            graph.remove(node, safe=True)
            remove_unused_initializers(graph, constants)
            changes.append(f"{node.op_type} node '{node.name}' ({kn.shape[0]}x{columns}, {kn.size:,} int8 weight bytes)"
                           f" -> {len(parts)} pieces of at most {width} columns + Concat")
        return changes
