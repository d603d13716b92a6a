"""Cut a model in two: the tail is one node and everything downstream of it, the head is the
rest. The head hands the tail the values it reads (the crossing values) as extra outputs;
running the head, then the tail on those, computes exactly what the whole model did.

The Edge TPU fix uses it to move a post-processing tail the Edge TPU cannot map (Softmax
over channels, LogSoftmax, ...) to the CPU, so the part that stays on the Edge TPU maps whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_ir as ir
from onnx import helper

from edgeopt.errors import UnsupportedOpError


@dataclass
class Cut:
    head: ir.Model
    tail: ir.Model
    crossing: list[str]  # values the head outputs for the tail, in the tail's input order


def downstream(graph: ir.Graph, start: ir.Node) -> list[ir.Node]:
    """`start` and every node that depends on it, in graph order."""
    reached = {start}
    for node in graph:
        if any(v is not None and v.producer() in reached for v in node.inputs):
            reached.add(node)
    return [n for n in graph if n in reached]


def _value_info(value: ir.Value) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(value.name, int(value.dtype), list(value.shape.numpy()))


def _model(proto: onnx.ModelProto, nodes: list[int], inputs, outputs) -> ir.Model:
    """A copy of `proto` with only `nodes` (by index), the given I/O, and the initializers it reads."""
    graph = proto.graph
    kept = [graph.node[i] for i in nodes]
    read = {name for node in kept for name in node.input}
    new = helper.make_graph(kept, graph.name, inputs, outputs,
                            initializer=[t for t in graph.initializer if t.name in read])
    model = helper.make_model(new, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    return ir.from_proto(model)


def cut_tail(model: ir.Model, start: ir.Node) -> Cut:
    graph = model.graph
    tail_nodes = downstream(graph, start)
    in_tail = set(tail_nodes)
    crossing: list[ir.Value] = []
    for node in tail_nodes:
        for value in node.inputs:
            if value is None or value.producer() in in_tail or value.is_initializer() or value in crossing:
                continue
            if value.producer() is None:
                raise UnsupportedOpError(
                    f"cannot move node '{node.name}' ({node.op_type}) off the Edge TPU: it reads model input "
                    f"'{value.name}' directly", hint="Build without --edgetpu-fix.")
            crossing.append(value)
    proto = ir.to_proto(model)
    index = {node: i for i, node in enumerate(graph)}
    head_outputs = [o for o in graph.outputs if o.producer() not in in_tail]
    tail_outputs = [o for o in graph.outputs if o.producer() in in_tail]
    head = _model(proto, [index[n] for n in graph if n not in in_tail], [_value_info(v) for v in graph.inputs],
                  [_value_info(v) for v in head_outputs + [c for c in crossing if c not in head_outputs]])
    tail = _model(proto, [index[n] for n in tail_nodes], [_value_info(v) for v in crossing],
                  [_value_info(v) for v in tail_outputs])
    return Cut(head, tail, [v.name for v in crossing])
