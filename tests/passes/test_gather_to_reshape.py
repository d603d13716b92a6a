"""gather-to-reshape: a Gather of every index in order becomes a Reshape; any other Gather stays."""

import numpy as np
import pytest
from onnx import helper

from edgeopt.ir import infer_shapes

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
