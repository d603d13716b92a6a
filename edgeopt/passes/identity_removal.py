"""remove-identity: drop nodes that pass their input through unchanged at inference.

Exporters emit Identity around outputs and parameters, and Dropout is a no-op outside
training; removing them saves a copy each and lets neighbouring ops meet (e.g. two
Transposes that an Identity kept apart).
"""

from __future__ import annotations

import onnx_ir as ir

from edgeopt.passes._rewrite import constant_array, is_onnx_op, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, register


def _is_inference_dropout(node: ir.Node) -> bool:
    """A Dropout whose mask nobody reads and whose training_mode is absent or constant false."""
    mask = node.outputs[1] if len(node.outputs) > 1 else None
    if mask is not None and (mask.uses() or mask.is_graph_output()):
        return False
    training_mode = node.inputs[2] if len(node.inputs) > 2 else None
    if training_mode is None:
        return True
    flag = constant_array(training_mode)
    return flag is not None and not flag.any()


def _passes_input_through(node: ir.Node) -> bool:
    if not node.inputs or node.inputs[0] is None:
        return False
    return is_onnx_op(node, "Identity") or (is_onnx_op(node, "Dropout") and _is_inference_dropout(node))


@register
class RemoveIdentity(Pass):
    name = "remove-identity"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        changes = []
        for node in list(graph):
            # replace_value refuses when the output name cannot move to the input (see its doc).
            if not _passes_input_through(node) or not replace_value(node.outputs[0], node.inputs[0]):
                continue
            inputs = list(node.inputs)
            graph.remove(node, safe=True)
            remove_unused_initializers(graph, inputs)  # Dropout's ratio / training_mode
            changes.append(f"removed {node.op_type} node '{node.name}'")
        return changes
