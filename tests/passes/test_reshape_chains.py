"""collapse-reshape-chains: a Reshape/Transpose run with two or more Transposes becomes at
most one Transpose between two Reshapes, with the same outputs."""

import numpy as np
import pytest
from onnx import helper

from edgeopt.ir import infer_shapes


def _chain_model(build_model, shape, steps, output_shape):
    """x -> steps (("Reshape", shape) or ("Transpose", perm)) -> y."""
    nodes, constants, value = [], {}, "x"
    for i, (op, arg) in enumerate(steps):
        out = "y" if i == len(steps) - 1 else f"t{i}"
        if op == "Reshape":
            constants[f"s{i}"] = np.array(arg, np.int64)
            nodes.append(helper.make_node("Reshape", [value, f"s{i}"], [out], name=f"reshape{i}"))
        else:
            nodes.append(helper.make_node("Transpose", [value], [out], name=f"transpose{i}", perm=arg))
        value = out
    return infer_shapes(build_model(nodes, [("x", shape)], [("y", output_shape)], constants))


# MobileViT's unfold of a [1, C, H, W] map into 2x2 patches: [P, N, C] = [4, 256, 144] at 32x32
UNFOLD = [("Reshape", [144 * 16, 2, 16, 2]), ("Transpose", [0, 2, 1, 3]), ("Reshape", [1, 144, 256, 4]),
          ("Transpose", [0, 3, 2, 1]), ("Reshape", [4, 256, 144])]
# and its fold back
FOLD = [("Reshape", [1, 4, 256, 144]), ("Transpose", [0, 3, 2, 1]), ("Reshape", [144 * 16, 16, 2, 2]),
        ("Transpose", [0, 2, 1, 3]), ("Reshape", [1, 144, 32, 32])]


@pytest.mark.parametrize(("shape", "steps", "output"), [([1, 144, 32, 32], UNFOLD, [4, 256, 144]),
                                                        ([4, 256, 144], FOLD, [1, 144, 32, 32])],
                         ids=["mobilevit-unfold", "mobilevit-fold"])
def test_patch_unfold_and_fold_move_data_once(build_model, apply_pass, shape, steps, output):
    run = apply_pass("collapse-reshape-chains", _chain_model(build_model, shape, steps, output))

    assert run.op_changes == {"Transpose": -1, "Reshape": -1}
    assert len(run.changes) == 1 and "one Transpose" in run.changes[0] and "(was 2 Transposes)" in run.changes[0]
    assert run.model.graph.outputs[0].name == "y"
    run.assert_outputs_match()


def test_transposes_that_cancel_leave_a_reshape(build_model, apply_pass):
    steps = [("Transpose", [0, 2, 1]), ("Reshape", [2, 3, 2, 5]), ("Reshape", [2, 6, 5]), ("Transpose", [0, 2, 1])]
    run = apply_pass("collapse-reshape-chains", _chain_model(build_model, [2, 5, 6], steps, [2, 5, 6]))

    assert run.op_changes == {"Transpose": -2}
    assert "a Reshape" in run.changes[0]
    run.assert_outputs_match()


@pytest.mark.parametrize("steps", [
    [("Reshape", [4, 3]), ("Transpose", [1, 0])],  # one Transpose: nothing to gain
    [("Transpose", [1, 0]), ("Reshape", [2, 6]), ("Transpose", [1, 0])],  # [4,3]^T -> [2,6]: a dim spans atoms
], ids=["single-transpose", "inexpressible"])
def test_other_chains_are_left_alone(build_model, apply_pass, steps):
    output = {2: [3, 4], 3: [6, 2]}[len(steps)]
    run = apply_pass("collapse-reshape-chains", _chain_model(build_model, [3, 4] if len(steps) == 2 else [4, 3],
                                                             steps, output))

    assert run.op_changes == {} and run.changes == []
    run.assert_outputs_match()
