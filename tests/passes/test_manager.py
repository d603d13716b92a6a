"""run_passes: the cleanup passes in order on one model holding every pattern they target."""

import numpy as np
from onnx import helper

from edgeopt.ir import infer_shapes
from edgeopt.passes import CLEANUP_ORDER, run_passes

RTOL, ATOL = 1e-5, 1e-6  # BN folding reorders float arithmetic


def test_cleanup_passes_report_their_changes_and_params(build_model, measure, rng):
    nodes = [
        helper.make_node("Transpose", ["x"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Identity", ["nhwc"], ["nhwc_copy"], name="id"),  # keeps the transposes apart
        helper.make_node("Transpose", ["nhwc_copy"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Pad", ["nchw", "pads"], ["padded"], name="zero_pad"),
        helper.make_node("Conv", ["padded", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["b"], name="bn"),
        helper.make_node("Dropout", ["b", "ratio", "training"], ["d"], name="drop"),
        helper.make_node("Shape", ["d"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["d", "target"], ["y"], name="flatten"),
    ]
    constants = {
        "w": rng.standard_normal([4, 3, 3, 3]).astype(np.float32),  # 108 params
        "scale": rng.standard_normal(4).astype(np.float32), "beta": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32), "var": rng.uniform(0.5, 2, 4).astype(np.float32),
        "ratio": np.float32(0.1), "training": np.array(False),
        "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        "zero": np.array(0, np.int64), "axes": np.array([0], np.int64), "minus_one": np.array([-1], np.int64),
    }
    model = infer_shapes(build_model(nodes, [("x", [2, 3, 8, 8])], [("y", [2, 256])], constants))

    run = measure(model, run_passes)

    reports = {report.name: report for report in run.changes}
    assert list(reports) == CLEANUP_ORDER
    assert reports["fold-constants"].changes == [
        "folded Shape node 'shape' -> constant [2, 4, 8, 8]",
        "folded Gather node 'gather' -> constant 2",
        "folded Unsqueeze node 'unsqueeze' -> constant [2]",
        "folded Concat node 'concat' -> constant [2, -1]",
    ]
    assert reports["remove-identity"].changes == ["removed Identity node 'id'", "removed Dropout node 'drop'"]
    assert reports["fold-batchnorm"].changes == ["folded BatchNormalization node 'bn' into Conv 'conv'"]
    assert reports["fold-pads"].changes == [
        "Pad node 'zero_pad' [1, 1, 1, 1] folded into Conv node 'conv' (pads [1, 1, 1, 1])"]
    assert reports["cancel-transposes"].changes == ["cancelled Transpose pair 'to_nhwc' -> 'to_nchw'"]
    assert reports["collapse-reshape-chains"].changes == []
    assert reports["fold-head-transposes"].changes == []
    # params: 108 weights + 16 BN + ratio, training + 8 pads + zero, axes, minus_one (3) = 137
    assert [(r.params_before, r.params_after) for r in reports.values()] == [
        (137, 136),  # the three index constants become the 2-element Reshape target
        (136, 134),  # Dropout's ratio and training_mode go
        (134, 134),  # nothing left to do: fold-constants folded its Gather
        (134, 134),  # no Softmax, no NaN guard
        (134, 122),  # the 16 BN parameters go, the Conv gains a 4-element bias
        (122, 114),  # the Pad's 8 pads go into the Conv's attribute
        (114, 114),
        (114, 114),  # no Reshape/Transpose chain with two Transposes left
        (114, 114),  # no attention heads
    ]
    assert run.op_changes == {"Transpose": -2, "Identity": -1, "Dropout": -1, "BatchNormalization": -1,
                              "Pad": -1, "Shape": -1, "Gather": -1, "Unsqueeze": -1, "Concat": -1}
    assert [node.op_type for node in run.model.graph] == ["Conv", "Reshape"]
    run.assert_outputs_match(rtol=RTOL, atol=ATOL)


def test_int8_builds_leave_out_the_float_only_cleanup(build_model):
    model = build_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])])
    _, reports = run_passes(model, int8=True)

    assert [r.name for r in reports] == [n for n in CLEANUP_ORDER if n != "fold-head-transposes"]
