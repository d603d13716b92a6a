"""The layers compression acts on: Conv, Gemm and MatMul nodes whose weight is a constant,
and the choice of which of them a pass may touch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.errors import UsageError
from edgeopt.ir.analysis import MAC_RULES
from edgeopt.passes._rewrite import (add_initializer, constant_array, is_onnx_op, remove_unused_initializers,
                                     replace_constant_input, replace_value)

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class Layer:
    node: ir.Node
    weight: np.ndarray  # as stored: Conv [M, C/group, k...], Gemm B [K, N] or [N, K] (transB), MatMul [K, N]

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def groups(self) -> int:
        return self.node.attributes.get_int("group", 1) if self.node.op_type == "Conv" else 1

    @property
    def output_axis(self) -> int:
        """The weight axis of output channels (Conv [M, ...], Gemm B [N, K] with transB, MatMul [K, N])."""
        if self.node.op_type == "Conv":
            return 0
        return 0 if self.node.op_type == "Gemm" and self.node.attributes.get_int("transB", 0) else 1

    @property
    def depthwise(self) -> bool:
        return self.node.op_type == "Conv" and self.groups > 1 and self.weight.shape[1] == 1

    def describe(self) -> str:
        return f"{self.node.op_type} '{self.name}'"

    def set_weight(self, array: np.ndarray) -> None:
        """Give the node a new weight constant (its old one dropped when nothing else reads it)."""
        replace_constant_input(self.node, 1, array.astype(self.weight.dtype), f"{self.name}.weight")
        self.weight = array


def weight_layers(model: ir.Model) -> list[Layer]:
    """Every Conv/Gemm/MatMul with a constant float weight, in graph order (MatMul: its second
    operand, two-dimensional)."""
    layers = []
    for node in model.graph:
        if not any(is_onnx_op(node, op) for op in WEIGHT_OPS) or len(node.inputs) < 2:
            continue
        weight = constant_array(node.inputs[1])
        if weight is None or weight.dtype.kind != "f" or (node.op_type == "MatMul" and weight.ndim != 2):
            continue
        layers.append(Layer(node, weight))
    return layers


def chosen_layers(model: ir.Model, exclude: list[str] | None, flag: str) -> list[Layer]:
    """The weight layers a pass acts on. `exclude` None: all but the first layer (it sees the raw
    input) and the last (the classifier), the layers whose error every output carries. Naming
    a node that is not a weight layer is an error, so a typo never silently prunes everything."""
    layers = weight_layers(model)
    if exclude is None:
        exclude = [layers[0].name, layers[-1].name] if len(layers) > 1 else []
    names = {layer.name for layer in layers}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        listed = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
        raise UsageError(f"{flag}: no Conv/Gemm/MatMul layer with a constant weight is named {', '.join(unknown)}",
                         hint=f"Layer names (edgeopt inspect MODEL lists them all): {listed}")
    return [layer for layer in layers if layer.name not in set(exclude)]


def check_ratio(flag: str, value: float, low_inclusive: bool = True) -> None:
    """A share must lie in [0, 1) (or (0, 1)): 1 would remove the layer altogether."""
    if not ((0 <= value if low_inclusive else 0 < value) and value < 1):
        interval = "[0, 1)" if low_inclusive else "(0, 1)"
        raise UsageError(f"{flag} {value}: give a share in {interval}", hint=f"e.g. {flag} 0.5")


def conv_attributes(node: ir.Node) -> dict:
    """A 2-D Conv's strides, pads, dilations (explicit; auto_pad SAME_* is resolved by the caller)."""
    return {"strides": list(node.attributes.get_ints("strides", [1, 1])),
            "pads": list(node.attributes.get_ints("pads", [0, 0, 0, 0])),
            "dilations": list(node.attributes.get_ints("dilations", [1, 1]))}


def explicit_pads(node: ir.Node) -> bool:
    """Pads a rewrite can split between two convs: none of auto_pad's SAME_* forms."""
    return node.attributes.get_string("auto_pad", "NOTSET") in ("NOTSET", "VALID")


def replace_with_chain(layer: Layer, chain: list[tuple[str, np.ndarray, dict]]) -> None:
    """Replace the layer by ops applied in turn to its input: (op, weight, attributes) each;
    the last op takes the layer's bias (Conv's B, Gemm's C with its beta)."""
    node, graph = layer.node, layer.node.graph
    x, bias = node.inputs[0], node.inputs[2] if len(node.inputs) > 2 else None
    made = []
    for i, (op, weight, attributes) in enumerate(chain):
        last = i == len(chain) - 1
        inputs = [x, add_initializer(graph, weight.astype(layer.weight.dtype), f"{layer.name}.weight{i}")]
        if last and bias is not None:
            inputs.append(bias)
        made.append(ir.node(op, inputs, attributes, name=f"{layer.name}.{i}"))
        x = made[-1].outputs[0]
    graph.insert_before(node, made)
    replace_value(node.outputs[0], x, take_name=True)
    weight = node.inputs[1]
    graph.remove(node, safe=True)
    remove_unused_initializers(graph, [weight])


def layer_macs(layer: Layer) -> int | None:
    return MAC_RULES[layer.node.op_type](layer.node)


def spatial_size(value: ir.Value) -> int | None:
    """H x W of a static NCHW tensor."""
    shape = value.shape
    if shape is None or not shape.is_static() or len(shape) != 4:
        return None
    return int(shape[2]) * int(shape[3])
