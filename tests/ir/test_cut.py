"""cut_tail: head then tail computes exactly what the whole model did; the crossing values
are the head's extra outputs; a tail that reads a model input is refused."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgeopt.errors import UnsupportedOpError
from edgeopt.ir import ort_session, to_bytes
from edgeopt.ir.cut import cut_tail, downstream

SHAPE = [1, 4, 3, 3]


def _model(extra_tail_input: bool = False) -> ir.Model:
    """x -> conv -> relu ("features", also an output) -> softmax over channels -> mul by features -> y."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], rng.standard_normal(16).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["features"], name="relu"),
             helper.make_node("Softmax", ["features"], ["p"], name="softmax", axis=1),
             helper.make_node("Mul", ["p", "x" if extra_tail_input else "features"], ["y"], name="mul")]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, SHAPE)  # noqa: E731
    graph = helper.make_graph(nodes, "g", [value("x")], [value("y"), value("features")], initializer=[weight])
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _run(model: ir.Model, feeds: dict) -> dict:
    session = ort_session(to_bytes(model))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def test_head_then_tail_is_the_whole_model():
    model = _model()
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)

    cut = cut_tail(model, model.graph.node("softmax"))

    assert [n.name for n in cut.head.graph] == ["conv", "relu"]
    assert [n.name for n in cut.tail.graph] == ["softmax", "mul"]
    assert cut.crossing == ["features"]
    assert [o.name for o in cut.head.graph.outputs] == ["features"]  # a model output that also crosses: once
    assert [i.name for i in cut.tail.graph.inputs] == ["features"] and not cut.tail.graph.initializers
    whole, head = _run(model, {"x": x}), _run(cut.head, {"x": x})
    tail = _run(cut.tail, {"features": head["features"]})
    np.testing.assert_array_equal(tail["y"], whole["y"])
    np.testing.assert_array_equal(head["features"], whole["features"])


def test_downstream_is_the_node_and_what_depends_on_it():
    model = _model()
    assert [n.name for n in downstream(model.graph, model.graph.node("relu"))] == ["relu", "softmax", "mul"]


def test_a_tail_reading_a_model_input_is_refused():
    model = _model(extra_tail_input=True)
    with pytest.raises(UnsupportedOpError, match="node 'mul' \\(Mul\\).*reads model input 'x'"):
        cut_tail(model, model.graph.node("softmax"))
