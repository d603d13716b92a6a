"""What `edgeopt inspect` reports: I/O, op histogram, parameters, MACs and peak activations.

MACs count the multiply-accumulates of the compute-bound ops (Conv, ConvTranspose, Gemm,
MatMul); element-wise ops, pools and activations count 0.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import onnx_ir as ir

from edgeopt.ir.arena import ArenaPlan, plan_arena
from edgeopt.ir.model import TensorSpec, input_specs, output_specs


def _shape(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return list(value.shape)


def _conv_macs(node: ir.Node) -> int | None:
    weight, out = _shape(node.inputs[1]), _shape(node.outputs[0])
    if weight is None or out is None:
        return None
    # weight [M, C/group, k...]; every output element needs C/group * prod(k) MACs
    return math.prod(out) * math.prod(weight[1:])


def _conv_transpose_macs(node: ir.Node) -> int | None:
    x, weight = _shape(node.inputs[0]), _shape(node.inputs[1])
    if x is None or weight is None:
        return None
    # weight [C, M/group, k...]; every input element scatters into M/group * prod(k) outputs
    return math.prod(x) * math.prod(weight[1:])


def _gemm_macs(node: ir.Node) -> int | None:
    a, out = _shape(node.inputs[0]), _shape(node.outputs[0])
    if a is None or out is None:
        return None
    trans_a = node.attributes.get_int("transA", 0)
    k = a[0] if trans_a else a[1]
    return math.prod(out) * k


def _matmul_macs(node: ir.Node) -> int | None:
    a, out = _shape(node.inputs[0]), _shape(node.outputs[0])
    if a is None or out is None:
        return None
    return math.prod(out) * a[-1]


MAC_RULES = {
    "Conv": _conv_macs,
    "ConvTranspose": _conv_transpose_macs,
    "Gemm": _gemm_macs,
    "MatMul": _matmul_macs,
}


@dataclass
class NodeCost:
    name: str
    op_type: str
    macs: int | None  # None: shapes unknown


@dataclass
class Analysis:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_histogram: dict[str, int]
    params: int
    param_bytes: dict[str, int]  # by dtype
    nodes: list[NodeCost]
    arena: ArenaPlan
    extra: dict = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(n.macs or 0 for n in self.nodes)

    @property
    def weight_bytes(self) -> int:
        return sum(self.param_bytes.values())

    def to_json(self) -> dict:
        return {
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "op_histogram": self.op_histogram,
            "params": self.params,
            "param_bytes": self.param_bytes,
            "weight_bytes": self.weight_bytes,
            "macs": self.macs,
            "macs_by_node": [{"name": n.name, "op": n.op_type, "macs": n.macs} for n in self.nodes if n.macs],
            "peak_activation": self.arena.to_json(),
            **self.extra,
        }


def _weights(graph: ir.Graph) -> list[ir.Value]:
    found = [v for v in graph.initializers.values() if v.const_value is not None]
    found += [n.outputs[0] for n in graph if n.op_type == "Constant" and n.outputs[0].const_value is not None]
    return found


def analyze(model: ir.Model) -> Analysis:
    graph = model.graph
    param_bytes: Counter[str] = Counter()
    params = 0
    for value in _weights(graph):
        tensor = value.const_value
        params += tensor.size
        param_bytes[tensor.dtype.numpy().name] += tensor.nbytes
    nodes = []
    for i, node in enumerate(graph):
        rule = MAC_RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        nodes.append(NodeCost(node.name or f"{node.op_type}_{i}", node.op_type, rule(node) if rule else 0))
    return Analysis(
        inputs=input_specs(model),
        outputs=output_specs(model),
        op_histogram=dict(Counter(n.op_type for n in graph).most_common()),
        params=params,
        param_bytes=dict(param_bytes),
        nodes=nodes,
        arena=plan_arena(graph),
    )
