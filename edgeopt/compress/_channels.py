"""Which channels of which tensors must be pruned together (a dependency graph in the spirit
of Torch-Pruning's, on the IR).

Every output channel of a weight layer (Conv, Gemm, MatMul with a constant weight) gets an
id. Ids flow along the graph with the tensors' channel axis (axis 1: NCHW or [N, features]):
element-wise ops and pools pass them on, a depthwise conv keeps them, Concat joins them,
Split cuts them, Flatten repeats each over the spatial positions. An element-wise op on two
computed tensors (a residual Add, a squeeze-excitation Mul) ties its operands' channels
position by position: tied ids are one union-find set, pruned together. Ids reaching
anything else (a graph output, a Transpose, a Reshape that is not a flatten, an op not known
here) are blocked: their sets are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import constant_array, is_onnx_op

PASS_THROUGH = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "Elu", "Selu", "Softplus",
                "Gelu", "Mish", "Identity", "Dropout", "Cast", "Neg", "Abs", "Sqrt", "Exp", "Erf", "MaxPool",
                "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "InstanceNormalization",
                "PRelu", "Pad", "Resize", "ReduceMean", "ReduceMax", "Squeeze", "Unsqueeze"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}


def shape_of(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return [int(d) for d in value.shape]


def producer_axis(node: ir.Node) -> int | None:
    """The weight axis holding output channels of a layer that makes new channels, or None."""
    weight = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight is None or weight.dtype.kind != "f":
        return None
    if is_onnx_op(node, "Conv") and node.attributes.get_int("group", 1) == 1 and weight.ndim == 4:
        return 0
    if is_onnx_op(node, "Gemm") and not node.attributes.get_int("transA", 0):
        return 0 if node.attributes.get_int("transB", 0) else 1
    if is_onnx_op(node, "MatMul") and weight.ndim == 2 and len(shape_of(node.inputs[0]) or []) == 2:
        return 1
    return None


def consumer_axis(node: ir.Node) -> int | None:
    """The weight axis a layer reads its input channels along (Conv, Gemm, MatMul)."""
    axis = producer_axis(node)
    if axis is None:
        return None
    return {"Conv": 1, "Gemm": 1 - axis, "MatMul": 0}[node.op_type]


def is_depthwise(node: ir.Node) -> bool:
    """One filter per input channel, multiplier 1: its output channels are its input's."""
    weight = constant_array(node.inputs[1]) if is_onnx_op(node, "Conv") and len(node.inputs) > 1 else None
    group = node.attributes.get_int("group", 1) if weight is not None else 1
    return weight is not None and group > 1 and weight.shape[0] == group and weight.shape[1] == 1


@dataclass
class ChannelGraph:
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # value name -> channel id per channel
    parent: list[int] = field(default_factory=list)  # union-find over channel ids
    owner: list[int] = field(default_factory=list)  # channel id -> index into producers (-1: none)
    producers: list[ir.Node] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)  # roots, resolved by `find` when read

    def new_ids(self, count: int, producer: int = -1) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        self.owner.extend([producer] * count)
        return np.arange(start, start + count)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def tie(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a, b):
            rx, ry = self.find(int(x)), self.find(int(y))
            if rx != ry:
                self.parent[ry] = rx

    def block(self, ids: np.ndarray | None) -> None:
        if ids is not None:
            self.blocked.update(int(i) for i in ids)

    def sets(self) -> dict[int, list[int]]:
        """Union-find root -> the channel ids pruned together with it."""
        members: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            members.setdefault(self.find(i), []).append(i)
        return members

    def blocked_roots(self) -> set[int]:
        return {self.find(i) for i in self.blocked}


def _channel_axis(value: ir.Value) -> bool:
    """Whether the tensor is NCHW or [N, features], the layouts channel ids are tracked in."""
    shape = shape_of(value)
    return shape is not None and len(shape) in (2, 4)


def _per_channel_constant(array: np.ndarray, rank: int, channels: int) -> bool:
    """A constant operand broadcasting along the channel axis with one value per channel."""
    shape = [1] * (rank - array.ndim) + list(array.shape)
    return len(shape) == rank and shape[1] == channels and channels > 1


def _flow(graph: ChannelGraph, node: ir.Node) -> None:
    """Set the channel maps of `node`'s outputs from its inputs', tying or blocking as needed."""
    maps = graph.maps
    ins = [maps.get(v.name) if v is not None else None for v in node.inputs]
    out = node.outputs[0] if node.outputs else None
    axis = producer_axis(node)
    op = node.op_type if node.domain in ("", "ai.onnx") else None
    if axis is not None or is_depthwise(node):
        if axis is not None and out is not None and _channel_axis(out):
            graph.producers.append(node)
            maps[out.name] = graph.new_ids(shape_of(out)[1], len(graph.producers) - 1)
        elif is_depthwise(node) and ins[0] is not None:
            maps[out.name] = ins[0]
        elif out is not None and _channel_axis(out):  # a MatMul or Gemm with other layouts: its own, fixed
            maps[out.name] = graph.new_ids(shape_of(out)[1])
            graph.block(maps[out.name])
        return  # a consumer reads any input channels it is given
    tracked = [m for m in ins if m is not None]
    if not tracked:
        return
    if op in PASS_THROUGH and _passes_channels(node):
        maps[out.name] = ins[0]
        graph.block(np.concatenate([m for m in ins[1:] if m is not None] or [np.zeros(0, int)]))
        return
    if op in ELEMENTWISE and _channel_axis(out) and _operands_fit(node, maps):
        for other in tracked[1:]:
            graph.tie(tracked[0], other)
        maps[out.name] = tracked[0]
        return
    if op == "Concat" and _is_channel_axis(node, "axis") and all(m is not None for m in ins):
        maps[out.name] = np.concatenate(ins)
        return
    if op == "Split" and _is_channel_axis(node, "axis") and ins[0] is not None:
        start = 0
        for value in node.outputs:
            size = shape_of(value)[1]
            maps[value.name] = ins[0][start:start + size]
            start += size
        return
    if op in ("Flatten", "Reshape") and _flattens(node):
        shape = shape_of(node.inputs[0])
        maps[out.name] = np.repeat(ins[0], int(np.prod(shape[2:])) if len(shape) > 2 else 1)
        return
    for m in tracked:
        graph.block(m)


def _passes_channels(node: ir.Node) -> bool:
    """A pass-through op that leaves the channel axis alone (pads, reduced or squeezed axes not 1)."""
    out = node.outputs[0]
    if not _channel_axis(out) or shape_of(out)[1] != shape_of(node.inputs[0])[1]:
        return False
    if node.op_type == "Pad":
        pads = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
        rank = len(shape_of(out))
        return pads is not None and pads[1] == 0 and pads[1 + rank] == 0
    if node.op_type in ("ReduceMean", "ReduceMax", "Squeeze", "Unsqueeze"):
        axes = constant_array(node.inputs[1]) if len(node.inputs) > 1 else node.attributes.get_ints("axes")
        rank = len(shape_of(node.inputs[0]))
        return axes is not None and 1 not in [int(a) % rank for a in np.atleast_1d(axes)]
    if node.op_type == "Resize":
        return len(node.inputs) < 4 or node.inputs[3] is None  # scales, not sizes (sizes name the channels)
    return True


def _operands_fit(node: ir.Node, maps: dict) -> bool:
    """Every operand either carries the output's channels on the same axis (computed and tracked)
    or is a constant that is one value, or one value per channel."""
    rank, channels = len(shape_of(node.outputs[0])), shape_of(node.outputs[0])[1]
    for value in node.inputs:
        array = constant_array(value)
        if array is not None:
            if array.size > 1 and not _per_channel_constant(array, rank, channels):
                return False
        elif value is None or value.name not in maps or len(maps[value.name]) != channels \
                or len(shape_of(value) or []) != rank:
            return False
    return True


def _is_channel_axis(node: ir.Node, name: str) -> bool:
    rank = len(shape_of(node.outputs[0]) or [])
    return rank in (2, 4) and node.attributes.get_int(name, 0) % rank == 1


def _flattens(node: ir.Node) -> bool:
    """Flatten(axis 1) or Reshape to [N, C*H*W]: channel-major features."""
    source, out = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    if source is None or out is None or len(out) != 2 or out[0] != source[0]:
        return False
    return node.op_type == "Reshape" or node.attributes.get_int("axis", 1) == 1


def channel_graph(model: ir.Model) -> ChannelGraph:
    graph = ChannelGraph()
    for node in model.graph:
        _flow(graph, node)
    for value in model.graph.outputs:
        graph.block(graph.maps.get(value.name))
    return graph
