"""edgetpu-activations: activations the Edge TPU has no kernel for, rewritten into ops it maps.

edgetpu_compiler 16 has no kernel for LEAKY_RELU or GELU (they are not in the supported-ops
table, https://coral.ai/docs/edgetpu/models-intro/#supported-operations), and the first op it
cannot map sends every later op to the CPU. MUL, ADD, RELU and LOGISTIC are in the table.
(Not Max(x, alpha * x): TFLite int8 MAXIMUM gives its inputs its output's scale, which clips
the negative side of x.)

| op | becomes | cost |
|---|---|---|
| LeakyRelu | PRelu(x, alpha), lowered to MUL, RELU, MUL, ADD | none: the same function |
| Gelu, and the Erf form exporters spell out | x * Sigmoid(1.702 x) | at most 0.021 per value (the sigmoid approximation of Hendrycks & Gimpel, arXiv:1606.08415, section 2) |

ELU, SELU and Softplus need EXP, which the Edge TPU lacks too: they are left for the tail
cut (edgeopt.edgetpu.fix) when they come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx_ir as ir

from edgeopt.ir.fusions import find_fusions
from edgeopt.passes._rewrite import ONNX_DOMAINS, add_initializer, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, register

GELU_SIGMOID_SCALE = 1.702  # arXiv:1606.08415, section 2


@dataclass(frozen=True)
class Replacement:
    """Nodes computing the op's output from its input x, and how that reads in a change line."""

    build: Callable[[ir.Graph, ir.Value, dict, str], tuple[list[ir.Node], str]]
    exact: bool


def _scalar(graph: ir.Graph, value: float, name: str) -> ir.Value:
    return add_initializer(graph, np.array(value, np.float32), name)


def _leaky_relu(graph: ir.Graph, x: ir.Value, attributes: dict, name: str):
    alpha = attributes.get("alpha", 0.01)
    return [ir.node("PRelu", [x, _scalar(graph, alpha, f"{name}.slope")], name=name)], f"PRelu(x, {alpha:g})"


def _gelu(graph: ir.Graph, x: ir.Value, attributes: dict, name: str):
    scaled = ir.node("Mul", [x, _scalar(graph, GELU_SIGMOID_SCALE, f"{name}.scale")], name=f"{name}.scale")
    gate = ir.node("Sigmoid", scaled.outputs, name=f"{name}.gate")
    return [scaled, gate, ir.node("Mul", [x, gate.outputs[0]], name=name)], f"x * Sigmoid({GELU_SIGMOID_SCALE} x)"


REPLACEMENTS: dict[str, Replacement] = {
    "LeakyRelu": Replacement(_leaky_relu, exact=True),
    "Gelu": Replacement(_gelu, exact=False),
}


def _attributes(node) -> dict:
    """Plain values: an ir.Node's attributes, or the dict a fusion carries."""
    attributes = node.attributes
    return dict(attributes) if isinstance(attributes, dict) else {k: a.value for k, a in attributes.items()}


@register
class EdgeTpuActivations(Pass):
    name = "edgetpu-activations"

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        fusions = find_fusions(graph)
        changes = []
        for node in list(graph):
            fusion = fusions.get(node)
            if fusion is not None and node is not fusion.anchor:
                continue  # the group is replaced at its anchor
            op = fusion.node if fusion is not None else node
            replacement = REPLACEMENTS.get(op.op_type) if op.domain in ONNX_DOMAINS else None
            if replacement is None:
                continue
            new_nodes, form = replacement.build(graph, op.inputs[0], _attributes(op), node.name or op.op_type)
            graph.insert_before(node, new_nodes)
            replace_value(op.outputs[0], new_nodes[-1].outputs[0], take_name=True)
            removed = [*(fusion.absorbed if fusion else ()), node]
            constants = [v for n in removed for v in n.inputs]
            graph.remove(removed, safe=True)
            remove_unused_initializers(graph, constants)
            spelled = " (Erf form)" if fusion is not None else ""
            changes.append(f"{op.op_type}{spelled} node '{node.name}' -> {form}"
                           f" ({'exact' if replacement.exact else 'approximation'})")
        return changes
