"""drop-softmax-nan-guard: the exporter's Where(IsNaN(softmax), 0, softmax) goes when the
Softmax input cannot hold NaN/inf (finite constants, finite-to-finite ops); it stays otherwise."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeopt.ir import infer_shapes, ort_session, to_bytes

SCORES = [1, 2, 4, 4]
FLOAT_MIN = float(np.finfo(np.float32).min)


def _attention(build_model, fill: float, cone=(), constants=None):
    """scores [-> `cone` nodes] + Where(mask, 0, fill) -> Softmax -> the exporter's NaN guard -> y."""
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 1, 1, 4])
    nodes = [*cone,
             helper.make_node("Cast", ["mask"], ["keep"], name="to_bool", to=TensorProto.BOOL),
             helper.make_node("Where", ["keep", "zero", "fill"], ["bias"], name="mask_bias"),
             helper.make_node("Add", [cone[-1].output[0] if cone else "x", "bias"], ["masked"], name="add_mask"),
             helper.make_node("Softmax", ["masked"], ["probs"], name="softmax", axis=-1),
             helper.make_node("IsNaN", ["probs"], ["nan"], name="is_nan"),
             helper.make_node("Where", ["nan", "zero", "probs"], ["y"], name="nan_guard")]
    constants = {"zero": np.array(0.0, np.float32), "fill": np.array(fill, np.float32)} | (constants or {})
    return infer_shapes(build_model(nodes, [("x", SCORES), mask], [("y", SCORES)], constants))


def _fully_masked(model) -> np.ndarray:
    """y with every position masked out."""
    feeds = {"x": np.random.default_rng(1).standard_normal(SCORES).astype(np.float32),
             "mask": np.zeros([1, 1, 1, 4], np.int64)}
    return ort_session(to_bytes(model)).run(["y"], feeds)[0]


def test_guard_after_a_finite_mask_is_removed(build_model, apply_pass):
    run = apply_pass("drop-softmax-nan-guard", _attention(build_model, FLOAT_MIN))

    assert run.op_changes == {"IsNaN": -1, "Where": -1}
    assert run.changes == ["Where node 'nan_guard' guards Softmax 'softmax' against NaN, "
                           "which its finite input cone cannot make -> removed"]
    assert run.model.graph.outputs[0].name == "y"
    assert run.model.graph.outputs[0].producer().op_type == "Softmax"
    assert "zero" in run.model.graph.initializers  # the mask still reads it
    run.assert_outputs_match()
    # a finite fill pushes every score of a fully masked row to -3.4e38: uniform, never NaN
    np.testing.assert_array_equal(_fully_masked(run.model), np.full(SCORES, 0.25, np.float32))


def test_guard_after_finite_ops_is_removed(build_model, apply_pass):
    cone = [helper.make_node("Div", ["x", "two"], ["half"], name="halve"),
            helper.make_node("Erf", ["half"], ["erf"], name="erf"),
            helper.make_node("LayerNormalization", ["erf", "gamma"], ["scores"], name="norm", epsilon=1e-12)]
    constants = {"two": np.array(2.0, np.float32), "gamma": np.ones(4, np.float32)}
    model = _attention(build_model, FLOAT_MIN, cone, constants)

    run = apply_pass("drop-softmax-nan-guard", model)

    assert run.op_changes == {"IsNaN": -1, "Where": -1}
    run.assert_outputs_match()


@pytest.mark.parametrize("fill", [-np.inf, np.nan], ids=["minus-inf", "nan"])
def test_guard_after_a_non_finite_mask_stays(build_model, apply_pass, fill):
    run = apply_pass("drop-softmax-nan-guard", _attention(build_model, fill))

    assert run.op_changes == {} and run.changes == []
    # and it matters: a fully masked row is NaN after the Softmax, 0 after the guard
    np.testing.assert_array_equal(_fully_masked(run.model), np.zeros(SCORES, np.float32))


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal", "Exp"])
def test_guard_after_an_op_that_can_make_inf_or_nan_stays(build_model, apply_pass, op):
    model = _attention(build_model, FLOAT_MIN, [helper.make_node(op, ["x"], ["scores"], name="risky")])

    run = apply_pass("drop-softmax-nan-guard", model)

    assert run.op_changes == {} and run.changes == []


@pytest.mark.parametrize("divisor", [np.array([1.0, 0.0, 2.0, 3.0], np.float32), None], ids=["constant-zero", "input"])
def test_guard_after_division_by_what_may_be_zero_stays(build_model, apply_pass, divisor):
    cone = [helper.make_node("Div", ["x", "divisor" if divisor is not None else "x"], ["scores"], name="ratio")]
    model = _attention(build_model, FLOAT_MIN, cone, {"divisor": divisor} if divisor is not None else {})

    run = apply_pass("drop-softmax-nan-guard", model)

    assert run.op_changes == {} and run.changes == []


def test_guard_after_a_layer_norm_without_epsilon_stays(build_model, apply_pass):
    """A constant row normalises to 0 / sqrt(0 + 0): NaN."""
    cone = [helper.make_node("LayerNormalization", ["x", "gamma"], ["scores"], name="norm", epsilon=0.0)]
    model = _attention(build_model, FLOAT_MIN, cone, {"gamma": np.ones(4, np.float32)})

    run = apply_pass("drop-softmax-nan-guard", model)

    assert run.op_changes == {} and run.changes == []


def _all_masked_guard(build_model, fill: float):
    """scores + a constant mask -> Softmax, guarded as torch's decomposed attention does it:
    Where(Not(Any(Not(scores == -inf), last axis)), 0, softmax)."""
    nodes = [helper.make_node("Add", ["x", "mask"], ["scores"], name="add_mask"),
             helper.make_node("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
             helper.make_node("Equal", ["scores", "minus_inf"], ["eq"], name="eq"),
             helper.make_node("Not", ["eq"], ["kept"], name="not_masked"),
             helper.make_node("Cast", ["kept"], ["kept_int"], name="to_int", to=TensorProto.INT32),
             helper.make_node("ReduceMax", ["kept_int", "last"], ["any_int"], name="any", keepdims=1),
             helper.make_node("Cast", ["any_int"], ["any"], name="to_bool", to=TensorProto.BOOL),
             helper.make_node("Not", ["any"], ["all_masked"], name="all_masked"),
             helper.make_node("Where", ["all_masked", "zero", "probs"], ["y"], name="row_guard")]
    constants = {"mask": np.array([0, 0, fill, 0], np.float32), "minus_inf": np.array(-np.inf, np.float32),
                 "last": np.array([-1], np.int64), "zero": np.array(0.0, np.float32)}
    return infer_shapes(build_model(nodes, [("x", SCORES)], [("y", SCORES)], constants))


def test_all_masked_row_guard_of_finite_scores_is_removed(build_model, apply_pass):
    run = apply_pass("drop-softmax-nan-guard", _all_masked_guard(build_model, FLOAT_MIN))

    assert run.op_changes == {"Where": -1, "Equal": -1, "Not": -2, "Cast": -2, "ReduceMax": -1}
    assert run.model.graph.outputs[0].producer().op_type == "Softmax"
    assert set(run.model.graph.initializers) == {"mask"}
    run.assert_outputs_match()


def test_all_masked_row_guard_after_a_minus_inf_mask_stays(build_model, apply_pass):
    run = apply_pass("drop-softmax-nan-guard", _all_masked_guard(build_model, -np.inf))
    assert run.op_changes == {} and run.changes == []
