"""fold-constants: precompute every node whose result is known at build time.

Exporters leave shape arithmetic (Shape -> Gather -> Concat -> Reshape) and constant
subexpressions in the graph; folding them lets later passes and backends see plain
constants, e.g. a Reshape with a constant target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from edgeopt.passes._rewrite import ONNX_DOMAINS, constant_array, remove_unused_initializers
from edgeopt.passes.base import Pass, PassConfig, register

# Folding these would freeze one random draw into the model.
NON_DETERMINISTIC = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
})
# DequantizeLinear on a constant is how a quantized (QDQ) model stores its int8 weights for the
# backends; folding it would silently turn them back into 4x larger floats.
KEPT = NON_DETERMINISTIC | {"DequantizeLinear"}
SUBGRAPH_ATTRIBUTES = (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)


@dataclass
class FoldConstantsConfig(PassConfig):
    max_elements: int = 1 << 20
    """Results larger than this stay computed at run time rather than bloating the model."""


def _foldable(node: ir.Node) -> bool:
    # A folded graph output would become an initializer, changing the model's interface;
    # an omitted (unnamed) optional output cannot be asked of the evaluator.
    return (node.domain in ONNX_DOMAINS
            and node.op_type not in KEPT
            and not any(attr.type in SUBGRAPH_ATTRIBUTES for attr in node.attributes.values())
            and all(value.name and not value.is_graph_output() for value in node.outputs))


def _static_dims(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return value.shape.numpy()


def _shape_or_size(node: ir.Node, dims: tuple[int, ...]) -> np.ndarray:
    """Shape/Size of a tensor whose shape is static: its data is not needed."""
    if node.op_type == "Size":
        return np.array(math.prod(dims), dtype=np.int64)
    # Python slicing clamps and wraps negative bounds exactly as Shape's start/end do.
    start, end = node.attributes.get_int("start", 0), node.attributes.get_int("end")
    return np.array(dims[start:end], dtype=np.int64)


def _evaluate(node: ir.Node, feeds: dict[str, np.ndarray], opset: int) -> list[np.ndarray] | None:
    """Run the node alone, as a one-node model, with the ONNX reference implementation."""
    untyped = onnx.TypeProto()
    graph = onnx.helper.make_graph(
        [ir.serde.serialize_node(node)], "fold",
        [onnx.helper.make_value_info(name, untyped) for name in feeds],
        [onnx.helper.make_value_info(value.name, untyped) for value in node.outputs],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # the reference lacks or rejects this op: leave it to the runtime
        return None
    return results if all(_storable(value, r) for value, r in zip(node.outputs, results)) else None


def _storable(value: ir.Value, result: object) -> bool:
    """A plain tensor of the declared dtype: sequences have no initializer form, and a dtype
    quirk of the reference implementation would break the consumers."""
    if not isinstance(result, np.ndarray):
        return False
    return value.dtype is None or value.dtype == ir.DataType.from_numpy(result.dtype)


def _describe(array: np.ndarray) -> str:
    if array.dtype.kind in "iub" and array.size <= 8:
        return str(array.tolist())
    return f"{array.dtype}{list(array.shape)}"


@register
class FoldConstants(Pass):
    name = "fold-constants"
    config_class = FoldConstantsConfig
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        graph.sort()  # producers first, so a chain folds in one sweep
        opset = model.opset_imports.get("", onnx.defs.onnx_opset_version())
        changes = []
        for node in list(graph):
            results = self._fold(node, opset) if _foldable(node) else None
            if results is None or any(r.size > self.config.max_elements for r in results):
                continue
            inputs = list(node.inputs)
            for value, result in zip(node.outputs, results):
                if value.uses():
                    constant = ir.val(value.name, const_value=ir.tensor(result, name=value.name))
                    value.replace_all_uses_with(constant)
                    graph.register_initializer(constant)
            graph.remove(node, safe=True)
            remove_unused_initializers(graph, inputs)
            changes.append(f"folded {node.op_type} node '{node.name}' -> constant "
                           + ", ".join(_describe(r) for r in results))
        return changes

    @staticmethod
    def _fold(node: ir.Node, opset: int) -> list[np.ndarray] | None:
        if node.op_type in ("Shape", "Size") and (dims := _static_dims(node.inputs[0])) is not None:
            return [_shape_or_size(node, dims)]
        feeds = {value.name: constant_array(value) for value in node.inputs if value is not None}
        if any(array is None for array in feeds.values()):
            return None
        return _evaluate(node, feeds, opset)
