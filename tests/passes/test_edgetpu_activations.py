"""edgetpu-activations: LeakyRelu becomes the same function (PRelu, lowered to mapped ops); GELU (as one op or in
its Erf form) becomes x * sigmoid(1.702 x), within the approximation's known bound."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

SHAPE = [1, 4, 5, 5]
GELU_APPROXIMATION_BOUND = 0.021  # max |gelu(x) - x sigmoid(1.702 x)|, see the pass's docstring


def _leaky(build_model, alpha):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Sub", ["a", "x"], ["b"], name="sub"),
             helper.make_node("LeakyRelu", ["b"], ["y"], name="leaky", alpha=alpha)]
    return build_model(nodes, [("x", SHAPE)], [("y", SHAPE)])


@pytest.mark.parametrize("alpha", [0.1, 1.5])
def test_leaky_relu_becomes_prelu(build_model, apply_pass, alpha):
    run = apply_pass("edgetpu-activations", _leaky(build_model, alpha))

    assert run.op_changes == {"LeakyRelu": -1, "PRelu": 1}
    assert run.changes == [f"LeakyRelu node 'leaky' -> PRelu(x, {alpha:g}) (exact)"]
    assert run.model.graph.outputs[0].name == "y"
    run.assert_outputs_match()


def test_erf_form_gelu_is_replaced_as_a_group(build_model, apply_pass):
    constants = {"root2": np.array(math.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
                 "half": np.array(0.5, np.float32), "three": np.array(3.0, np.float32)}
    nodes = [helper.make_node("Mul", ["x", "three"], ["x3"], name="spread"),
             helper.make_node("Div", ["x3", "root2"], ["s"], name="div"),
             helper.make_node("Erf", ["s"], ["e"], name="erf"),
             helper.make_node("Add", ["e", "one"], ["i"], name="add"),
             helper.make_node("Mul", ["half", "i"], ["h"], name="mul_half"),
             helper.make_node("Mul", ["x3", "h"], ["y"], name="gelu")]
    model = build_model(nodes, [("x", SHAPE)], [("y", SHAPE)], constants)  # "spread": GELU's error peaks at |x| ~ 2.5

    run = apply_pass("edgetpu-activations", model)

    assert run.op_changes == {"Div": -1, "Erf": -1, "Add": -1, "Sigmoid": 1}  # Muls: 3 out, 2 in, + spread
    assert run.changes == ["Gelu (Erf form) node 'gelu' -> x * Sigmoid(1.702 x) (approximation)"]
    assert set(run.model.graph.initializers) == {"three", "gelu.scale"}
    error = np.abs(run.outputs_after["y"] - run.outputs_before["y"]).max()
    assert 0.005 < error <= GELU_APPROXIMATION_BOUND


def test_a_gelu_op_is_replaced_within_the_bound(apply_pass):
    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], name="gelu", approximate="tanh")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))

    run = apply_pass("edgetpu-activations", model)

    assert run.op_changes == {"Gelu": -1, "Mul": 2, "Sigmoid": 1}
    np.testing.assert_allclose(run.outputs_after["y"], run.outputs_before["y"], atol=GELU_APPROXIMATION_BOUND)


def test_ops_the_edge_tpu_maps_are_left_alone(build_model, apply_pass):
    nodes = [helper.make_node("Sigmoid", ["x"], ["y"], name="sig")]
    run = apply_pass("edgetpu-activations", build_model(nodes, [("x", SHAPE)], [("y", SHAPE)]))
    assert run.changes == [] and run.op_changes == {}


def test_the_stated_gelu_bound_holds_over_the_real_line():
    x = np.linspace(-8, 8, 16001)
    gelu = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    approximation = x / (1 + np.exp(-1.702 * x))
    assert 0.02 < np.abs(gelu - approximation).max() <= GELU_APPROXIMATION_BOUND
