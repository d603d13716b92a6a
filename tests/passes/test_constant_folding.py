"""fold-constants: folded results must equal what onnxruntime computes, exactly."""

import math

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgeopt.ir import infer_shapes
from edgeopt.passes import make_pass

I64 = np.int64


def _batch_reshape(build_model):
    """The exporter idiom for x.reshape(x.shape[0], -1), batch size read at run time."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["r", "target"], ["y"], name="reshape"),
    ]
    constants = {"zero": np.array(0, I64), "axes": np.array([0], I64), "minus_one": np.array([-1], I64)}
    return build_model(nodes, [("x", ["N", 3, 4, 4])], [("y", ["N", 48])], constants)


def test_batch_reshape_folds_to_a_constant_target_once_the_input_is_static(build_model, apply_pass):
    model = _batch_reshape(build_model)
    model.graph.inputs[0].shape = ir.Shape([2, 3, 4, 4])  # what the frontend does with --input-shape
    model = infer_shapes(model)

    run = apply_pass("fold-constants", model)

    assert run.op_changes == {"Shape": -1, "Gather": -1, "Unsqueeze": -1, "Concat": -1}
    assert run.changes == [
        "folded Shape node 'shape' -> constant [2, 3, 4, 4]",
        "folded Gather node 'gather' -> constant 2",
        "folded Unsqueeze node 'unsqueeze' -> constant [2]",
        "folded Concat node 'concat' -> constant [2, -1]",
    ]
    target = run.model.graph.node("reshape").inputs[1]
    assert target.const_value.numpy().tolist() == [2, -1]
    assert list(run.model.graph.initializers) == ["target"]  # zero/axes/minus_one went unused
    run.assert_outputs_match()


def test_shape_of_a_dynamic_tensor_is_not_folded(build_model):
    model = infer_shapes(_batch_reshape(build_model))
    assert make_pass("fold-constants").apply(model) == []
    assert len(model.graph) == 6


@pytest.mark.parametrize(("start", "end", "dims"), [
    (1, -1, [3, 4]),
    (-3, None, [3, 4, 5]),
    (0, 100, [2, 3, 4, 5]),  # out-of-range bounds clamp
])
def test_shape_slice_and_size_of_a_static_tensor(build_model, apply_pass, start, end, dims):
    bounds = {"start": start} | ({"end": end} if end is not None else {})
    nodes = [
        helper.make_node("Shape", ["x"], ["dims"], name="shape", **bounds),
        helper.make_node("Concat", ["minus_one", "dims"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
        helper.make_node("Size", ["x"], ["count"], name="size"),
        helper.make_node("Unsqueeze", ["count", "axes"], ["flat"], name="unsqueeze"),
        helper.make_node("Reshape", ["x", "flat"], ["z"], name="flatten"),
    ]
    model = build_model(nodes, [("x", [2, 3, 4, 5])], [("y", [120 // math.prod(dims), *dims]), ("z", [120])],
                        {"minus_one": np.array([-1], I64), "axes": np.array([0], I64)})

    run = apply_pass("fold-constants", model)

    assert run.op_changes == {"Shape": -1, "Concat": -1, "Size": -1, "Unsqueeze": -1}
    assert run.changes == [
        f"folded Shape node 'shape' -> constant {dims}",
        f"folded Concat node 'concat' -> constant {[-1, *dims]}",
        "folded Size node 'size' -> constant 120",
        "folded Unsqueeze node 'unsqueeze' -> constant [120]",
    ]
    run.assert_outputs_match()


def test_constant_chain_folds_in_one_run(build_model, apply_pass):
    nodes = [
        helper.make_node("Constant", [], ["a"], name="const",
                         value=helper.make_tensor("a", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])),
        helper.make_node("Add", ["a", "b"], ["ab"], name="add"),
        helper.make_node("Mul", ["ab", "c"], ["abc"], name="mul"),
        helper.make_node("Add", ["x", "abc"], ["y"], name="use"),
    ]
    model = build_model(nodes, [("x", [2, 3])], [("y", [2, 3])],
                        {"b": np.float32([0.5, 0.25, 0.125]), "c": np.float32([3, -1, 7])})

    run = apply_pass("fold-constants", model)

    assert run.op_changes == {"Constant": -1, "Add": -1, "Mul": -1}
    assert run.changes == [
        "folded Constant node 'const' -> constant float32[3]",
        "folded Add node 'add' -> constant float32[3]",
        "folded Mul node 'mul' -> constant float32[3]",
    ]
    assert list(run.model.graph.initializers) == ["abc"]
    np.testing.assert_array_equal(run.model.graph.initializers["abc"].const_value.numpy(), [4.5, -2.25, 21.875])
    run.assert_outputs_match()


Y = [("y", [3])]  # every left-alone model computes y[3] from x[3]


def _random_times_zero():
    """Non-deterministic op: folding would freeze one draw (the test zeroes it to compare outputs)."""
    nodes = [helper.make_node("RandomUniformLike", ["c"], ["noise"], name="random"),
             helper.make_node("Mul", ["noise", "zero"], ["nothing"], name="mul"),
             helper.make_node("Add", ["x", "nothing"], ["y"], name="add")]
    return nodes, Y, {"c": np.zeros(3, np.float32), "zero": np.float32(0)}


def _if_with_constant_condition():
    """Subgraphs are out of scope even when the condition is constant."""
    def branch(name, value):
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [3])
        constant = helper.make_node("Constant", [], [f"{name}_out"],
                                    value=helper.make_tensor(name, TensorProto.FLOAT, [3], [value] * 3))
        return helper.make_graph([constant], name, [], [out])
    nodes = [helper.make_node("If", ["cond"], ["picked"], name="if",
                              then_branch=branch("then", 1.0), else_branch=branch("else", 2.0)),
             helper.make_node("Add", ["x", "picked"], ["y"], name="add")]
    return nodes, Y, {"cond": np.array(True)}


def _constant_graph_output():
    """A folded graph output would turn into an initializer and leave the model's outputs."""
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="add"),
             helper.make_node("Mul", ["c", "c"], ["c2"], name="square")]
    return nodes, Y + [("c2", [3])], {"c": np.float32([1, 2, 3])}


def _quantized_weight():
    """QDQ models keep int8 weights behind DequantizeLinear: folding would store floats."""
    nodes = [helper.make_node("DequantizeLinear", ["w_int8", "w_scale"], ["w"], name="dequantize"),
             helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    return nodes, Y, {"w_int8": np.array([-3, 0, 7], np.int8), "w_scale": np.float32(0.5)}


def _tile():
    nodes = [helper.make_node("Tile", ["c", "repeats"], ["tiled"], name="tile"),
             helper.make_node("Add", ["x", "tiled"], ["y"], name="add")]
    return nodes, Y, {"c": np.float32([1]), "repeats": np.array([3], I64)}


@pytest.mark.parametrize(("case", "params"), [
    (_random_times_zero, None),
    (_if_with_constant_condition, None),
    (_constant_graph_output, None),
    (_quantized_weight, None),
    pytest.param(_tile, {"max_elements": 2}, id="_tile_above_max_elements"),
])
def test_left_alone(build_model, apply_pass, case, params):
    nodes, outputs, constants = case()

    run = apply_pass("fold-constants", build_model(nodes, [("x", [3])], outputs, constants), params)

    assert run.changes == []
    assert run.op_changes == {}
    run.assert_outputs_match()
