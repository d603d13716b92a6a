"""Whole small nets: a conv net must lower with no transpose at all (the TFLite and Edge TPU
targets pay for each one), take its input NHWC (or as given, for a Keras-style NHWC model)
and match onnxruntime. Then the refusals: an unsupported op, a run-time weight, a dynamic dim.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import helper

from edgeopt.errors import ModelError, UnsupportedOpError
from edgeopt.lower import NeedsConstant, lower
from lower.against_ort import SAME_PADS, GraphBuilder, assert_matches_ort, moved

NHWC, IDENTITY, MATRIX = (0, 2, 3, 1), (0, 1, 2, 3), (0, 1)


def inverted_residual(graph: GraphBuilder) -> str:
    """Conv -> Relu -> depthwise Conv -> Clip(0, 6) -> residual Add -> pool -> Flatten -> Gemm."""
    x = graph.input("x", (1, 3, 8, 8))
    expanded = graph.node("Relu", graph.conv(x, 3, 8, pads=SAME_PADS))
    depthwise = graph.conv(expanded, 8, 8, group=8, pads=SAME_PADS)
    bounds = [graph.weight(name, np.array(value, np.float32)) for name, value in (("zero", 0.0), ("six", 6.0))]
    pooled = graph.node("GlobalAveragePool", graph.node("Add", expanded, graph.node("Clip", depthwise, *bounds)))
    return graph.gemm(graph.node("Flatten", pooled), 8, 10)


def conv_pool_flatten(graph: GraphBuilder) -> str:
    """Conv -> MaxPool -> Conv(stride 2) -> Flatten of a 4x2x2 map -> Gemm: the Gemm's weight
    rows absorb the (C, H, W) -> (H, W, C) order of the flattened NHWC map."""
    x = graph.input("x", (1, 3, 8, 8))
    pooled = graph.node("MaxPool", graph.conv(x, 3, 4, pads=SAME_PADS), kernel_shape=[2, 2], strides=[2, 2])
    features = graph.conv(pooled, 4, 4, strides=[2, 2], pads=SAME_PADS)
    return graph.gemm(graph.node("Flatten", features), 16, 10)


def squeeze_excite(graph: GraphBuilder) -> str:
    """Conv -> (GlobalAveragePool -> Conv -> Relu -> Conv -> HardSigmoid) scales its channels -> Conv."""
    x = graph.input("x", (1, 3, 8, 8))
    features = graph.conv(x, 3, 8, pads=SAME_PADS)
    squeezed = graph.node("Relu", graph.conv(graph.node("GlobalAveragePool", features), 8, 2, kernel=1))
    gate = graph.node("HardSigmoid", graph.conv(squeezed, 2, 8, kernel=1), alpha=1 / 6)
    return graph.conv(graph.node("Mul", features, gate), 8, 4, pads=SAME_PADS)


def keras_style(graph: GraphBuilder) -> str:
    """An NHWC input that a Keras export transposes to NCHW, and the NCHW result transposed
    back: both Transposes are free, the output is stored as the model gives it."""
    x = graph.input("x", (1, 8, 8, 3))
    features = graph.conv(graph.node("Transpose", x, perm=[0, 3, 1, 2]), 3, 8, pads=SAME_PADS)
    features = graph.conv(graph.node("Relu", features), 8, 4, pads=SAME_PADS)
    return graph.node("Transpose", features, perm=[0, 2, 3, 1])


NETS = [
    (inverted_residual, NHWC, MATRIX),
    (conv_pool_flatten, NHWC, MATRIX),
    (squeeze_excite, NHWC, NHWC),
    (keras_style, IDENTITY, IDENTITY),
]


@pytest.mark.parametrize(("net", "input_perm", "output_perm"), NETS, ids=[net.__name__ for net, *_ in NETS])
def test_conv_net_lowers_without_transposes(net, input_perm, output_perm):
    graph = GraphBuilder()
    lowered = assert_matches_ort(graph.model([net(graph)]), graph.feeds)
    assert moved(lowered) == []
    assert [port.perm for port in lowered.inputs] == [input_perm]
    assert [port.perm for port in lowered.outputs] == [output_perm]


def unsupported_op(graph: GraphBuilder) -> ir.Model:
    x = graph.input("x", (1, 3, 4, 4))
    mixed = graph.node("Det", graph.node("Relu", x, name="first"), name="mix")
    return ir.from_proto(graph.model([graph.node("Relu", mixed, name="last")]))


def custom_domain_op(graph: GraphBuilder) -> ir.Model:
    """Named after its op type, as exporters name nodes: the message must not garble the name."""
    x = graph.input("x", (1, 3, 4, 4))
    graph.nodes.append(helper.make_node("Mix", [graph.node("Relu", x, name="first")], ["mixed"], name="Mix_1",
                                        domain="com.example"))
    model = graph.model([graph.node("Relu", "mixed", name="last")])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return ir.from_proto(model)


def runtime_weight(graph: GraphBuilder) -> ir.Model:
    x, weight = graph.input("x", (1, 3, 4, 4)), graph.input("w", (2, 3, 3, 3))
    return ir.from_proto(graph.model([graph.node("Conv", x, weight, name="conv")]))


def dynamic_batch(graph: GraphBuilder) -> ir.Model:
    graph.inputs["x"] = ("N", 3, 4, 4)
    return ir.from_proto(graph.model([graph.node("Relu", "x")]))


REFUSALS = [
    (unsupported_op, UnsupportedOpError, ["node 'mix' (Det, #2 of 3)", "no TFLite lowering"]),
    (custom_domain_op, UnsupportedOpError, ["node 'Mix_1' (com.example::Mix, #2 of 3)"]),
    (runtime_weight, NeedsConstant, ["node 'conv' (Conv, #1 of 1)", "input 1 (weight) must be a constant"]),
    (dynamic_batch, ModelError, ["input 'x'", "dynamic"]),
]


@pytest.mark.parametrize(("model", "error", "fragments"), REFUSALS, ids=[model.__name__ for model, *_ in REFUSALS])
def test_refusal_names_what_is_refused(model, error, fragments):
    with pytest.raises(error) as raised:
        lower(model(GraphBuilder()))
    assert type(raised.value) is error
    assert [fragment for fragment in fragments if fragment not in raised.value.message] == []
