"""gather-to-reshape: a Gather of every index in order becomes a Reshape; any other Gather stays."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeopt.ir import infer_shapes, ort_session, to_bytes

POOLED = [1, 6, 1, 1]


def _view_model(build_model, indices: np.ndarray, axis: int = 0):
    """The exporter's `x.view(1, -1)` of a pooled tensor: Reshape -> Gather -> Reshape."""
    nodes = [helper.make_node("Reshape", ["x", "flat_shape"], ["flat"], name="flatten"),
             helper.make_node("Gather", ["flat", "indices"], ["strided"], name="as_strided", axis=axis),
             helper.make_node("Reshape", ["strided", "view_shape"], ["y"], name="view")]
    constants = {"flat_shape": np.array([-1], np.int64), "indices": indices, "view_shape": np.array([1, -1], np.int64)}
    return infer_shapes(build_model(nodes, [("x", POOLED)], [("y", [1, indices.size])], constants))


def test_every_index_in_pooled_shape_becomes_a_reshape(build_model, apply_pass):
    run = apply_pass("gather-to-reshape", _view_model(build_model, np.arange(6, dtype=np.int64).reshape(POOLED)))

    assert run.op_changes == {"Gather": -1, "Reshape": 1}
    assert run.changes == ["Gather node 'as_strided' takes every index of its axis in order -> Reshape to [1, 6, 1, 1]"]
    assert "indices" not in run.model.graph.initializers
    run.assert_outputs_match()


def test_gather_on_an_inner_axis_keeps_the_other_dims(build_model, apply_pass):
    nodes = [helper.make_node("Gather", ["x", "indices"], ["y"], name="pick", axis=-1)]
    model = build_model(nodes, [("x", [2, 3, 4])], [("y", [2, 3, 2, 2])], {"indices": np.arange(4).reshape(2, 2)})

    run = apply_pass("gather-to-reshape", model)

    assert run.op_changes == {"Gather": -1, "Reshape": 1}
    assert run.model.graph.outputs[0].name == "y"
    run.assert_outputs_match()


@pytest.mark.parametrize("indices", [np.array([1, 0, 2, 3, 4, 5]), np.arange(5), np.array([0, 1, 2, 3, 4, 5, 5])],
                         ids=["permuted", "missing-one", "repeated"])
def test_any_other_gather_is_left_alone(build_model, apply_pass, indices):
    run = apply_pass("gather-to-reshape", _view_model(build_model, indices.astype(np.int64)))

    assert run.op_changes == {} and run.changes == []
    run.assert_outputs_match()


def _mask_model(build_model, indices: np.ndarray):
    """The exporter's `mask[:, None, None, :]` of a boolean attention mask: GatherND of coordinates."""
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 8])
    out = helper.make_tensor_value_info("y", TensorProto.BOOL, [1, 1, 1, 8])
    nodes = [helper.make_node("GatherND", ["mask", "indices"], ["y"], name="expand_mask")]
    return build_model(nodes, [mask], [out], {"indices": indices.astype(np.int64)})


def _coordinates(order) -> np.ndarray:
    return np.stack([np.zeros(8, np.int64), np.asarray(order)], -1).reshape(1, 1, 1, 8, 2)


def test_gather_nd_of_every_coordinate_in_order_becomes_a_reshape(build_model, apply_pass):
    indices = _coordinates(np.arange(8))
    indices[..., 3, 1] = -5  # 3 counted from the end of the axis
    run = apply_pass("gather-to-reshape", _mask_model(build_model, indices))

    assert run.op_changes == {"GatherND": -1, "Reshape": 1}
    assert run.changes == ["GatherND node 'expand_mask' takes every coordinate in order -> Reshape to [1, 1, 1, 8]"]
    assert "indices" not in run.model.graph.initializers
    mask = np.array([[True, False, True, True, False, False, True, False]])
    y = ort_session(to_bytes(run.model)).run(["y"], {"mask": mask})[0]
    np.testing.assert_array_equal(y, mask.reshape(1, 1, 1, 8))


@pytest.mark.parametrize("order", [[1, 0, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 6]], ids=["permuted", "repeated"])
def test_any_other_gather_nd_is_left_alone(build_model, apply_pass, order):
    run = apply_pass("gather-to-reshape", _mask_model(build_model, _coordinates(order)))

    assert run.op_changes == {} and run.changes == []
