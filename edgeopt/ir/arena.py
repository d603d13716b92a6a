"""Activation memory plan: tensor lifetimes by liveness, offsets by greedy-by-size.

Same strategy as TFLite's GreedyMemoryPlanner (tensorflow/lite/simple_memory_arena +
greedy_memory_planner): place tensors largest first, each at the lowest offset that does
not overlap any already placed tensor whose lifetime intersects its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx_ir as ir


@dataclass(frozen=True)
class Lifetime:
    name: str
    size: int  # bytes
    first: int  # index of the producing node (-1 for graph inputs)
    last: int  # index of the last consuming node (len(nodes) for graph outputs)

    def overlaps(self, other: "Lifetime") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    size: int  # arena bytes: the peak activation memory of this plan
    live_peak: int  # largest sum of simultaneously live tensors: no plan can beat this
    offsets: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # tensors without a static size

    def to_json(self) -> dict:
        return {"arena_bytes": self.size, "live_peak_bytes": self.live_peak, "unknown_size": self.unknown}


def tensor_bytes(value: ir.Value, float_itemsize: float | None = None) -> int | None:
    """`float_itemsize`: bytes per element of float tensors, when an artefact holds them
    otherwise (1 for a full-int8 .tflite); integer tensors (token ids) keep their own."""
    if value.shape is None or value.dtype is None or not value.shape.is_static():
        return None
    itemsize = value.dtype.itemsize  # 0.5 for 4-bit types
    if float_itemsize is not None and value.dtype.is_floating_point():
        itemsize = float_itemsize
    return math.ceil(math.prod(value.shape) * itemsize)


def lifetimes(graph: ir.Graph, float_itemsize: float | None = None) -> tuple[list[Lifetime], list[str]]:
    """Lifetimes of every activation (graph inputs and node outputs, not weights)."""
    nodes = list(graph)
    index = {id(node): i for i, node in enumerate(nodes)}
    end = len(nodes)
    values = [(v, -1) for v in graph.inputs if not v.is_initializer()]
    values += [(out, index[id(node)]) for node in nodes for out in node.outputs]
    result, unknown = [], []
    for value, first in values:
        if value.const_value is not None:
            continue
        size = tensor_bytes(value, float_itemsize)
        if size is None:
            unknown.append(value.name)
            continue
        uses = [index[id(user)] for user, _ in value.uses() if id(user) in index]
        last = end if value.is_graph_output() else max(uses, default=first)
        result.append(Lifetime(value.name, size, first, last))
    return result, unknown


def greedy_by_size(tensors: list[Lifetime]) -> dict[str, int]:
    offsets: dict[str, int] = {}
    placed: list[Lifetime] = []
    for tensor in sorted(tensors, key=lambda t: (-t.size, t.first, t.name)):
        busy = sorted((offsets[p.name], p.size) for p in placed if p.overlaps(tensor))
        offset = 0
        for start, size in busy:
            if start - offset >= tensor.size:
                break
            offset = max(offset, start + size)
        offsets[tensor.name] = offset
        placed.append(tensor)
    return offsets


def plan_arena(graph: ir.Graph, float_itemsize: float | None = None) -> ArenaPlan:
    tensors, unknown = lifetimes(graph, float_itemsize)
    offsets = greedy_by_size(tensors)
    size = max((offsets[t.name] + t.size for t in tensors), default=0)
    steps = range(-1, len(graph) + 1)
    live_peak = max((sum(t.size for t in tensors if t.first <= s <= t.last) for s in steps), default=0)
    return ArenaPlan(size, live_peak, offsets, unknown)
