"""gather-to-reshape: a Gather of every index of its axis, or a GatherND of every coordinate,
in order, only reshapes.

The dynamo exporter writes `x.view(n, -1)` on a pooled tensor as Reshape -> Gather -> Reshape
("as_strided"), where the Gather's indices are 0..n-1 laid out in the pooled shape. That
Gather costs a GATHER op and stores an int64 table as large as the tensor (10 KB in
EfficientNet-Lite0, whose int8 file had 6 KB to spare under its size bound). As a Reshape
it costs nothing: consecutive reshapes fold.

The same exporter writes `mask[:, None, None, :]` of a transformer's attention mask as a
GatherND whose index table lists every coordinate in order. As a Reshape it is exact on
booleans, and it keeps GATHER_ND (version 5 on booleans, which edgetpu_compiler 16 cannot
parse, and no Edge TPU kernel) out of the model.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import add_initializer, constant_array, is_onnx_op, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, register


def _gather_nd_reshaped(node: ir.Node) -> list[int] | None:
    """The GatherND's output shape, when its indices list every coordinate of its input in order."""
    data, indices = node.inputs[0], constant_array(node.inputs[1])
    shape = data.shape if data is not None else None
    if indices is None or shape is None or not shape.is_static() or node.attributes.get_int("batch_dims", 0):
        return None
    dims, depth = [int(d) for d in shape], indices.shape[-1]
    every = np.stack(np.meshgrid(*[np.arange(d) for d in dims[:depth]], indexing="ij"), -1).reshape(-1, depth)
    listed = indices.reshape(-1, depth) % np.array(dims[:depth])
    if listed.shape != every.shape or not np.array_equal(listed, every):
        return None
    return [*indices.shape[:-1], *dims[depth:]]


def _reshaped(node: ir.Node) -> list[int] | None:
    """The shape the Gather's output has, when the Gather is a reshape of its static input."""
    if is_onnx_op(node, "GatherND") and len(node.inputs) == 2:
        return _gather_nd_reshaped(node)
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
            what = "every coordinate" if node.op_type == "GatherND" else "every index of its axis"
            changes.append(f"{node.op_type} node '{node.name}' takes {what} in order -> Reshape to {shape}")
        return changes
