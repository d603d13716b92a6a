"""Trained weights go back into the IR: lowering the written-back IR gives exactly the trained
variables, and onnxruntime on it agrees with the trained lowering; shared constants are split
first so that each layer keeps its own values."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.ir import ort_session, to_bytes, unshare_initializers
from edgeopt.lower import lower
from edgeopt.train.writeback import write_back
from lower.against_ort import SAME_PADS, GraphBuilder


def conv_net():
    """A conv (OIHW -> HWIO), a depthwise conv, a Flatten of the NHWC map into a Gemm with
    alpha and transB (rows permuted, weights scaled); both convs share one bias constant."""
    g = GraphBuilder(seed=5)
    x = g.input("image", (1, 3, 6, 6))
    shared = g.weight("shared_bias", g.random(4))
    x = g.node("Conv", x, g.weight("w1", g.random((4, 3, 3, 3))), shared, pads=SAME_PADS, name="conv")
    x = g.node("Relu", x)
    x = g.node("Conv", x, g.weight("w2", g.random((4, 1, 3, 3))), shared, pads=SAME_PADS, group=4, name="depthwise")
    x = g.node("Flatten", x)
    y = g.node("Gemm", x, g.weight("w3", g.random((5, 144))), g.weight("b3", g.random(5)), alpha=0.5, transB=1,
               name="gemm")
    return ir.from_proto(g.model([y]))


def test_trained_variables_come_back_from_the_written_ir():
    model = conv_net()
    assert unshare_initializers(model) == 1  # the depthwise conv gets its own copy of the bias
    lowered = lower(model)
    rng = np.random.default_rng(0)
    for variable in lowered.weights:  # "training"
        variable.assign(variable.numpy() + rng.normal(0, 0.1, variable.shape).astype(np.float32))
    trained = [v.numpy() for v in lowered.weights]

    report = write_back(model, lowered)

    assert report.skipped == []
    assert sorted(report.constants) == ["b3", "shared_bias", "shared_bias__copy1", "w1", "w2", "w3"]
    for again, expected in zip(lower(model).weights, trained):
        np.testing.assert_allclose(again.numpy(), expected, rtol=1e-6, atol=1e-7)
    image = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    tf_out = np.asarray(lowered({"image": np.transpose(image, (0, 2, 3, 1))})[0])
    ort_out = ort_session(to_bytes(model)).run(None, {"image": image})[0]
    np.testing.assert_allclose(ort_out, tf_out, rtol=1e-5, atol=1e-5)


def test_a_variable_made_from_no_constant_is_reported_not_written():
    """A conv without a bias input gets a zero bias variable: training may move it, but the
    IR has nowhere to put it."""
    g = GraphBuilder(seed=6)
    y = g.node("Conv", g.input("image", (1, 2, 4, 4)), g.weight("w", g.random((3, 2, 1, 1))), name="conv")
    model = ir.from_proto(g.model([y]))
    lowered = lower(model)
    for variable in lowered.weights:
        variable.assign(variable.numpy() + 0.25)
    report = write_back(model, lowered)
    assert report.constants == ["w"] and len(report.skipped) == 1 and "bias" in report.skipped[0]
