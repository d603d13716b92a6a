"""fold-batchnorm: the folded model must match the original to float32 rounding.

Folding reorders float arithmetic (W * s computed ahead of the convolution), so outputs
are compared with rtol=1e-5, atol=1e-6 rather than exactly.
"""

import numpy as np
import pytest
from onnx import helper

RTOL, ATOL = 1e-5, 1e-6


def _bn_params(rng, channels, prefix="bn"):
    return {
        f"{prefix}_scale": rng.standard_normal(channels).astype(np.float32),
        f"{prefix}_beta": rng.standard_normal(channels).astype(np.float32),
        f"{prefix}_mean": rng.standard_normal(channels).astype(np.float32),
        f"{prefix}_var": rng.uniform(0.5, 2.0, channels).astype(np.float32),
    }


def _bn(x, y, name="bn"):
    return helper.make_node("BatchNormalization", [x, f"{name}_scale", f"{name}_beta", f"{name}_mean", f"{name}_var"],
                            [y], name=name, epsilon=1e-3)


@pytest.mark.parametrize(("x_shape", "weight_shape", "group", "with_bias"), [
    ([1, 4, 9], [6, 4, 3], 1, False),  # Conv1d
    ([2, 4, 5, 5], [6, 2, 3, 3], 2, True),  # grouped Conv2d
    ([1, 4, 6, 6], [4, 1, 3, 3], 4, False),  # depthwise
])
def test_conv_bn_folds(build_model, apply_pass, rng, x_shape, weight_shape, group, with_bias):
    channels = weight_shape[0]
    constants = {"w": rng.standard_normal(weight_shape).astype(np.float32), **_bn_params(rng, channels)}
    conv_inputs = ["x", "w"]
    if with_bias:
        constants["b"] = rng.standard_normal(channels).astype(np.float32)
        conv_inputs.append("b")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], name="conv", group=group),
             _bn("c", "y")]
    out_shape = [x_shape[0], channels, *(d - 2 for d in x_shape[2:])]
    model = build_model(nodes, [("x", x_shape)], [("y", out_shape)], constants)

    run = apply_pass("fold-batchnorm", model)

    assert run.op_changes == {"BatchNormalization": -1}
    assert run.changes == ["folded BatchNormalization node 'bn' into Conv 'conv'"]
    conv = run.model.graph.node("conv")
    assert conv.outputs[0] is run.model.graph.outputs[0] and conv.outputs[0].name == "y"
    assert sorted(run.model.graph.initializers) == ["conv.bias", "conv.weight"]  # old weight and BN params gone
    run.assert_outputs_match(rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("trans_b", "with_bias"), [(1, True), (0, False)])
def test_gemm_bn_folds(build_model, apply_pass, rng, trans_b, with_bias):
    weight_shape = [4, 5] if trans_b else [5, 4]
    constants = {"w": rng.standard_normal(weight_shape).astype(np.float32), **_bn_params(rng, 4)}
    gemm_inputs = ["x", "w"]
    if with_bias:
        constants["b"] = rng.standard_normal(4).astype(np.float32)
        gemm_inputs.append("b")
    nodes = [helper.make_node("Gemm", gemm_inputs, ["g"], name="linear", transB=trans_b, alpha=0.5, beta=2.0),
             _bn("g", "bn_out"),
             helper.make_node("Relu", ["bn_out"], ["y"], name="relu")]
    model = build_model(nodes, [("x", [3, 5])], [("y", [3, 4])], constants)

    run = apply_pass("fold-batchnorm", model)

    assert run.op_changes == {"BatchNormalization": -1}
    assert run.changes == ["folded BatchNormalization node 'bn' into Gemm 'linear'"]
    assert run.model.graph.node("relu").inputs[0].name == "bn_out"  # the result keeps the BN's name
    run.assert_outputs_match(rtol=RTOL, atol=ATOL)


def test_shared_weight_folds_into_separate_copies(build_model, apply_pass, rng):
    constants = {"w": rng.standard_normal([3, 3, 1, 1]).astype(np.float32),
                 **_bn_params(rng, 3, "bn1"), **_bn_params(rng, 3, "bn2")}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"), _bn("c1", "y1", "bn1"),
             helper.make_node("Conv", ["x", "w"], ["c2"], name="conv2"), _bn("c2", "y2", "bn2")]
    model = build_model(nodes, [("x", [1, 3, 4, 4])], [("y1", [1, 3, 4, 4]), ("y2", [1, 3, 4, 4])], constants)

    run = apply_pass("fold-batchnorm", model)

    assert run.op_changes == {"BatchNormalization": -2}
    assert sorted(run.model.graph.initializers) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
    run.assert_outputs_match(rtol=RTOL, atol=ATOL)


def _conv_output_read_twice():
    """Scaling the Conv weights would change what the Relu sees."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), _bn("c", "y"),
             helper.make_node("Relu", ["c"], ["z"], name="relu")]
    return nodes, [("y", [1, 3, 4, 4]), ("z", [1, 3, 4, 4])]


def _standalone_bn():
    """No producer to fold into: the BN stays a BN (no rewrite into Mul/Add)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), _bn("r", "y")]
    return nodes, [("y", [1, 3, 4, 4])]


@pytest.mark.parametrize("case", [_conv_output_read_twice, _standalone_bn])
def test_left_alone(build_model, apply_pass, rng, case):
    nodes, outputs = case()
    constants = {"w": rng.standard_normal([3, 3, 1, 1]).astype(np.float32), **_bn_params(rng, 3)}
    model = build_model(nodes, [("x", [1, 3, 4, 4])], outputs, constants)

    run = apply_pass("fold-batchnorm", model)

    assert run.changes == []
    assert run.op_changes == {}
    run.assert_outputs_match()
