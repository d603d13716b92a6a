"""Node groups that mean one op: the lowering emits them as that op (one TF op), and the
Edge TPU activation rewrite replaces them as a whole.

Exporters spell some ops out in primitives: activations, for which TFLite has a single
builtin with int8 kernels while the primitives (ERF) have none, and GroupNorm, whose
primitives reshape across the NHWC layout. A fusion names the group's last
node (the anchor), the nodes it absorbs, and the single op (from the lowering table) that
replaces them. Each matcher is one small function; FUSIONS lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import onnx_ir as ir


@dataclass
class Fusion:
    anchor: ir.Node
    absorbed: list[ir.Node]
    node: SimpleNamespace  # what the table's lowering sees: op_type, inputs, outputs, attributes


def _const(value: ir.Value | None) -> float | None:
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    array = value.const_value.numpy()
    return float(array.reshape(())) if array.size == 1 else None


def _sole_consumer(value: ir.Value, op_type: str) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output() or uses[0].node.op_type != op_type:
        return None
    return uses[0].node


def _other(node: ir.Node, value: ir.Value) -> ir.Value:
    return node.inputs[1] if node.inputs[0] is value else node.inputs[0]


def gelu_erf(erf: ir.Node) -> Fusion | None:
    """x * 0.5 * (1 + erf(x / sqrt 2)), in any association of the two products (PyTorch's
    exporters at opsets below 20)."""
    scale = erf.inputs[0].producer()
    if scale is None or scale.op_type not in ("Div", "Mul") or _sole_consumer(scale.outputs[0], "Erf") is not erf:
        return None
    factor = _const(scale.inputs[1])
    if factor is None or not math.isclose(factor if scale.op_type == "Mul" else 1 / factor, 1 / math.sqrt(2), rel_tol=1e-5):
        return None
    x = scale.inputs[0]
    add = _sole_consumer(erf.outputs[0], "Add")
    if add is None or _const(_other(add, erf.outputs[0])) != 1.0:
        return None
    group, current, needed = [scale, erf, add], add.outputs[0], {"x", "half"}
    while needed:
        mul = _sole_consumer(current, "Mul")
        if mul is None:
            return None
        operand = _other(mul, current)
        half_of_x = operand.producer()
        if operand is x:
            needed.discard("x")
        elif _const(operand) == 0.5:
            needed.discard("half")
        elif (half_of_x is not None and half_of_x.op_type == "Mul" and x in half_of_x.inputs
              and _const(_other(half_of_x, x)) == 0.5 and _sole_consumer(operand, "Mul") is mul):
            needed -= {"x", "half"}
            group.append(half_of_x)
        else:
            return None
        group.append(mul)
        current = mul.outputs[0]
    anchor = group[-1]
    node = SimpleNamespace(op_type="Gelu", domain="", name=anchor.name, inputs=[x], outputs=list(anchor.outputs),
                           attributes={})
    return Fusion(anchor, group[:-1], node)


def group_norm(norm: ir.Node) -> Fusion | None:
    """Reshape(x, [N, G, -1]) -> InstanceNormalization -> Reshape back to x's shape: how
    exporters spell GroupNorm (torch's GroupNorm, PoolFormer's and MobileViTV2's GroupNorm(1)).
    Lowered op by op, both reshapes merge axes that NHWC does not keep together (2 TRANSPOSE
    ops each); as one GroupNormalization it stays in NHWC."""
    split = norm.inputs[0].producer()
    if split is None or split.op_type != "Reshape" or _sole_consumer(split.outputs[0], norm.op_type) is not norm:
        return None
    merge = _sole_consumer(norm.outputs[0], "Reshape")
    x = split.inputs[0]
    shapes = [v.shape for v in (x, split.outputs[0], merge.outputs[0] if merge else None)]
    if merge is None or not all(s is not None and all(isinstance(d, int) for d in s) for s in shapes):
        return None
    (batch, channels, *_), grouped, restored = (tuple(s) for s in shapes)
    groups = grouped[1] if len(grouped) == 3 else 0
    if restored != tuple(shapes[0]) or len(restored) < 3 or grouped[0] != batch or not groups or channels % groups:
        return None
    epsilon = norm.attributes.get("epsilon")
    attributes = {"num_groups": ir.AttrInt64("num_groups", groups),
                  "epsilon": ir.AttrFloat32("epsilon", epsilon.value if epsilon is not None else 1e-5)}
    node = SimpleNamespace(op_type="GroupNormalization", domain="", name=merge.name, inputs=[x, *norm.inputs[1:]],
                           outputs=list(merge.outputs), attributes=attributes)
    return Fusion(merge, [split, norm], node)


FUSIONS = {"Erf": gelu_erf, "InstanceNormalization": group_norm}  # op type that starts a match -> matcher


def find_fusions(graph: ir.Graph) -> dict[ir.Node, Fusion]:
    """Fusions by the node that is absorbed or anchors them."""
    found: dict[ir.Node, Fusion] = {}
    for node in graph:
        matcher = FUSIONS.get(node.op_type)
        fusion = matcher(node) if matcher and node not in found else None
        if fusion is not None:
            for member in (*fusion.absorbed, fusion.anchor):
                found[member] = fusion
    return found



