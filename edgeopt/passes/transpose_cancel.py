"""cancel-transposes: collapse back-to-back Transposes into one, or none.

Layout conversions (NCHW <-> NHWC) from exporters and converters leave Transpose pairs
that undo each other; each one is a full copy of the tensor at run time.
Transpose(p2) after Transpose(p1) is Transpose(q) with q[i] = p1[p2[i]].
"""

from __future__ import annotations

import onnx_ir as ir

from edgeopt.passes._rewrite import is_onnx_op, replace_value, transpose_perm
from edgeopt.passes.base import Pass, register


def _transpose_pair(second: ir.Node) -> tuple[ir.Node, list[int]] | None:
    """(first, composed perm) when `second` is a Transpose reading another Transpose's output."""
    if not is_onnx_op(second, "Transpose"):
        return None
    first = second.inputs[0].producer()
    if first is None or not is_onnx_op(first, "Transpose"):
        return None
    p1, p2 = transpose_perm(first), transpose_perm(second)
    if p1 is None or p2 is None:
        return None
    return first, [p1[axis] for axis in p2]


@register
class CancelTransposes(Pass):
    name = "cancel-transposes"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        graph.sort()  # producers first, so a chain of three or more collapses in one sweep
        changes = []
        for second in list(graph):
            pair = _transpose_pair(second)
            if pair is None:
                continue
            first, composed = pair
            source = first.inputs[0]
            if composed == list(range(len(composed))):
                if not replace_value(second.outputs[0], source):
                    continue
                graph.remove(second, safe=True)
                changes.append(f"cancelled Transpose pair '{first.name}' -> '{second.name}'")
            else:
                # The second node becomes the merged one, so its output (and name) stays as is.
                second.replace_input_with(0, source)
                second.attributes["perm"] = ir.AttrInt64s("perm", composed)
                changes.append(f"merged Transpose '{first.name}' into '{second.name}' (perm {composed})")
            if not first.outputs[0].uses() and not first.outputs[0].is_graph_output():
                graph.remove(first, safe=True)
        return changes
