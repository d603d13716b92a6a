"""fold-pads: a zero Pad of H and W folds into the Conv after it, and into a MaxPool when
the input is non-negative and the merged pads are SAME_UPPER's; every other Pad stays."""

import numpy as np
import pytest
from onnx import helper

from edgeopt.ir import infer_shapes

X = [1, 3, 8, 8]


def _pad(pads, value=None, source="x"):
    inputs = [source, "pads"] + (["value"] if value is not None else [])
    return helper.make_node("Pad", inputs, ["padded"], name="zero_pad"), {"pads": np.array(pads, np.int64)} | (
        {"value": np.array(value, np.float32)} if value is not None else {})


def _model(build_model, window, pads, y_shape, value=None, relu=False):
    """x [-> Relu] -> Pad -> `window` (a node reading "padded" and writing "y" of `y_shape`)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu")] if relu else []
    pad, constants = _pad(pads, value, "r" if relu else "x")
    return infer_shapes(build_model(nodes + [pad, window[0]], [("x", X)], [("y", y_shape)], constants | window[1]))


def _conv(rng, **attrs):
    return (helper.make_node("Conv", ["padded", "w"], ["y"], name="conv", kernel_shape=[3, 3], **attrs),
            {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)})


def _max_pool(**attrs):
    return helper.make_node("MaxPool", ["padded"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], **attrs), {}


def test_zero_pad_folds_into_a_conv_adding_to_its_pads(build_model, apply_pass, rng):
    model = _model(build_model, _conv(rng, strides=[2, 2], pads=[1, 0, 0, 0]), [0, 0, 0, 0, 0, 0, 1, 1], [1, 4, 4, 4])

    run = apply_pass("fold-pads", model)

    assert run.op_changes == {"Pad": -1}
    assert run.changes == ["Pad node 'zero_pad' [0, 0, 1, 1] folded into Conv node 'conv' (pads [1, 0, 1, 1])"]
    assert "pads" not in run.model.graph.initializers
    run.assert_outputs_match(rtol=1e-6, atol=1e-6)  # onnxruntime may sum a padded conv in another order


def test_zero_pad_after_relu_folds_into_a_max_pool_when_the_result_is_same_upper(build_model, apply_pass):
    # 8 -> 4 at stride 2 with a 3x3 window: SAME_UPPER pads 0 before, 1 after
    run = apply_pass("fold-pads", _model(build_model, _max_pool(), [0, 0, 0, 0, 0, 0, 1, 1], [1, 3, 4, 4], relu=True))

    assert run.op_changes == {"Pad": -1}
    assert [tuple(a.value) for n in run.model.graph if n.op_type == "MaxPool" for a in [n.attributes["pads"]]] == [
        (0, 0, 1, 1)]
    run.assert_outputs_match()


@pytest.mark.parametrize("pads, relu", [
    ([0, 0, 1, 1, 0, 0, 1, 1], True),  # pads 1 on both sides: not SAME, a PAD is needed anyway
    ([0, 0, 0, 0, 0, 0, 1, 1], False),  # values that may be negative: a padded zero could win
], ids=["not-same", "maybe-negative"])
def test_max_pool_keeps_a_pad_it_cannot_take_exactly(build_model, apply_pass, pads, relu):
    run = apply_pass("fold-pads", _model(build_model, _max_pool(), pads, [1, 3, 4, 4], relu=relu))

    assert run.op_changes == {} and run.changes == []
    run.assert_outputs_match()


@pytest.mark.parametrize("pads, value", [
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.5),  # not zeros
    ([0, 1, 1, 1, 0, 0, 1, 1], None),  # pads a channel too
], ids=["non-zero", "channel"])
def test_conv_keeps_a_pad_that_is_not_zeros_of_h_and_w(build_model, apply_pass, rng, pads, value):
    in_channels = 3 + pads[1] + pads[5]
    conv = (helper.make_node("Conv", ["padded", "w"], ["y"], name="conv", kernel_shape=[3, 3]),
            {"w": rng.standard_normal((4, in_channels, 3, 3)).astype(np.float32)})

    run = apply_pass("fold-pads", _model(build_model, conv, pads, [1, 4, 8, 8], value))

    assert run.op_changes == {} and run.changes == []
    run.assert_outputs_match()
