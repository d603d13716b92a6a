"""A model run on fixed samples a segment at a time, in graph order.

Refit needs, layer after layer, the values just before a layer in a model whose earlier
layers it has already changed. Running the whole model for each layer costs a full run per
layer and sample; a walk runs only the nodes it has not run yet, from the values that cross
the cut (kept for every sample), so a walk through all the layers costs one run per sample.
onnxruntime runs every node whatever is fetched, hence one small model per segment.
Memory: the values crossing the cut, for every sample (a residual block: two activations).
`outputs_of` is the plain whole-model run, for values read once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir

from edgeopt.ir import ort_session, to_bytes


def outputs_of(model: ir.Model | bytes, names: list[str]) -> Callable[[dict], list[np.ndarray]]:
    """feed -> the values `names` take in `model` (onnxruntime, intermediate values too)."""
    proto = onnx.load_from_string(model if isinstance(model, bytes) else to_bytes(model))
    present = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in present)
    session = ort_session(proto.SerializeToString(), threads=2)
    return lambda feed: session.run(names, feed)  # noqa: E731


class Walk:
    """Values of a model on `feeds`, each node run once per feed: `advance` to the values wanted."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.values = [dict(feed) for feed in feeds]  # per feed: the values kept at the cut
        self.done = 0  # nodes run, in graph order

    def advance(self, model: ir.Model, wanted: list[str]) -> list[list[np.ndarray]]:
        """Per feed, the arrays `wanted` names. The nodes run are those of `model` as it is now,
        so a change to a node not yet run shows, and a change to one already run does not."""
        nodes = list(model.graph)
        produced = {value.name: i for i, node in enumerate(nodes) for value in node.outputs}
        stop = max([self.done] + [produced[name] + 1 for name in wanted if name in produced])
        if stop > self.done:
            self._run(model, nodes, stop, set(wanted))
        return [[values[name] for name in wanted] for values in self.values]

    def _run(self, model: ir.Model, nodes: list[ir.Node], stop: int, wanted: set[str]) -> None:
        position = {id(node): i for i, node in enumerate(nodes)}
        segment = nodes[self.done:stop]
        made = {value.name for node in segment for value in node.outputs}
        inputs = {value.name: value for node in segment for value in node.inputs
                  if value is not None and value.name not in made and not value.is_initializer()}
        later = {value.name for value in model.graph.outputs} | wanted
        outputs = [value for node in segment for value in node.outputs if value.name in later
                   or any(position.get(id(use.node), stop) >= stop for use in value.uses())]
        proto = ir.to_proto(model)
        initializers = {value.name for node in segment for value in node.inputs
                        if value is not None and value.is_initializer()}
        graph = onnx.helper.make_graph(
            list(proto.graph.node[self.done:stop]), "segment",
            [_info(value, self.values[0][name]) for name, value in inputs.items()],
            [_info(value) for value in outputs],
            [tensor for tensor in proto.graph.initializer if tensor.name in initializers])
        segment_model = onnx.helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
        segment_model.functions.extend(proto.functions)
        session = ort_session(segment_model.SerializeToString(), threads=2)
        names = [value.name for value in outputs]
        needed = {value.name for node in nodes[stop:] for value in node.inputs if value is not None} | later
        for values in self.values:
            values.update(zip(names, session.run(names, {name: values[name] for name in inputs})))
            for name in [name for name in values if name not in needed]:
                del values[name]
        self.done = stop


def _info(value: ir.Value, array: np.ndarray | None = None) -> onnx.ValueInfoProto:
    """A segment's input (typed by the array it is fed) or output (by the value's dtype)."""
    if array is not None:
        dtype = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    else:
        dtype = value.dtype.value if value.dtype is not None else onnx.TensorProto.FLOAT
    return onnx.helper.make_tensor_value_info(value.name, dtype, None)
