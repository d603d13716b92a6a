"""gather-to-reshape: a Gather that picks every index of its axis, in order, only reshapes.

The dynamo exporter writes `x.view(n, -1)` on a pooled tensor as Reshape -> Gather -> Reshape
("as_strided"), where the Gather's indices are 0..n-1 laid out in the pooled shape. That
Gather costs a GATHER op and stores an int64 table as large as the tensor (10 KB in
EfficientNet-Lite0, whose int8 file had 6 KB to spare under its size bound). As a Reshape
it costs nothing: consecutive reshapes fold.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import add_initializer, constant_array, is_onnx_op, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, register


def _reshaped(node: ir.Node) -> list[int] | None:
    """The shape the Gather's output has, when the Gather is a reshape of its static input."""
    if not is_onnx_op(node, "Gather") or len(node.inputs) != 2:
        return None
    data, indices = node.inputs[0], constant_array(node.inputs[1])
    shape = data.shape if data is not None else None
    if indices is None or shape is None or not shape.is_static():
        return None
    dims = [int(d) for d in shape]
    axis = node.attributes.get_int("axis", 0) % len(dims)
    if indices.size != dims[axis] or not np.array_equal(indices.ravel(), np.arange(dims[axis])):
        return None
    return [*dims[:axis], *indices.shape, *dims[axis + 1:]]


@register
class GatherToReshape(Pass):
    name = "gather-to-reshape"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        changes = []
        for node in list(graph):
            shape = _reshaped(node)
            if shape is None:
                continue
            target = add_initializer(graph, np.array(shape, np.int64), f"{node.name}.shape")
            reshape = ir.node("Reshape", [node.inputs[0], target], name=node.name)
            graph.insert_before(node, reshape)
            replace_value(node.outputs[0], reshape.outputs[0], take_name=True)
            indices = node.inputs[1]
            graph.remove(node, safe=True)
            remove_unused_initializers(graph, [indices])
            changes.append(f"Gather node '{node.name}' takes every index of its axis in order -> Reshape to {shape}")
        return changes
