"""remove-identity: dropping pass-through nodes must not change outputs, nor output names."""

import numpy as np
import pytest
from onnx import TensorProto, helper

SHAPE = [2, 3]


def _relu(x, y, name):
    return helper.make_node("Relu", [x], [y], name=name)


def test_identity_between_ops_is_removed(build_model, apply_pass):
    nodes = [_relu("x", "a", "relu1"), helper.make_node("Identity", ["a"], ["b"], name="id"), _relu("b", "y", "relu2")]
    model = build_model(nodes, [("x", SHAPE)], [("y", SHAPE)])

    run = apply_pass("remove-identity", model)

    assert run.op_changes == {"Identity": -1}
    assert run.changes == ["removed Identity node 'id'"]
    assert run.model.graph.node("relu2").inputs[0].name == "a"
    run.assert_outputs_match()


def test_identity_feeding_a_graph_output_hands_its_name_to_the_input(build_model, apply_pass):
    nodes = [_relu("x", "a", "relu"), helper.make_node("Identity", ["a"], ["y"], name="id")]
    model = build_model(nodes, [("x", SHAPE)], [("y", SHAPE)])

    run = apply_pass("remove-identity", model)

    assert run.op_changes == {"Identity": -1}
    assert run.changes == ["removed Identity node 'id'"]
    relu_out = run.model.graph.node("relu").outputs[0]
    assert relu_out.name == "y" and relu_out is run.model.graph.outputs[0]
    run.assert_outputs_match()


def _dropout_model(build_model, training_mode, mask_is_output=False):
    """Relu -> Dropout(ratio, [training_mode]) -> Relu; `training_mode` is None, a bool constant or "input"."""
    inputs, constants, dropout_inputs = [("x", SHAPE)], {"ratio": np.float32(0.5)}, ["a", "ratio"]
    if training_mode == "input":
        inputs.append(helper.make_tensor_value_info("training", TensorProto.BOOL, []))
        dropout_inputs.append("training")
    elif training_mode is not None:
        constants["training"] = np.array(training_mode)
        dropout_inputs.append("training")
    nodes = [_relu("x", "a", "relu1"),
             helper.make_node("Dropout", dropout_inputs, ["b", "mask"] if mask_is_output else ["b"], name="drop"),
             _relu("b", "y", "relu2")]
    outputs = [("y", SHAPE)]
    if mask_is_output:
        outputs.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, SHAPE))
    return build_model(nodes, inputs, outputs, constants)


@pytest.mark.parametrize("training_mode", [None, False])
def test_inference_dropout_is_removed_with_its_constants(build_model, apply_pass, training_mode):
    model = _dropout_model(build_model, training_mode)

    run = apply_pass("remove-identity", model)

    assert run.op_changes == {"Dropout": -1}
    assert run.changes == ["removed Dropout node 'drop'"]
    assert list(run.model.graph.initializers) == []  # ratio and training_mode went unused
    run.assert_outputs_match()


@pytest.mark.parametrize("model_case", [
    pytest.param(lambda build: _dropout_model(build, "input"), id="dropout-training-mode-at-run-time"),
    pytest.param(lambda build: _dropout_model(build, False, mask_is_output=True), id="dropout-mask-read"),
    pytest.param(lambda build: build([helper.make_node("Identity", ["x"], ["y"], name="id")],
                                     [("x", SHAPE)], [("y", SHAPE)]), id="graph-input-to-graph-output"),
    pytest.param(lambda build: build([helper.make_node("Identity", ["c"], ["y"], name="id")],
                                     [], [("y", SHAPE)], {"c": np.ones(SHAPE, np.float32)}),
                 id="initializer-to-graph-output"),
    pytest.param(lambda build: build([_relu("x", "a", "relu"), helper.make_node("Identity", ["a"], ["y"], name="id")],
                                     [("x", SHAPE)], [("a", SHAPE), ("y", SHAPE)]), id="graph-output-to-graph-output"),
])
def test_left_alone(build_model, apply_pass, model_case):
    run = apply_pass("remove-identity", model_case(build_model))

    assert run.changes == []
    assert run.op_changes == {}
    run.assert_outputs_match()
