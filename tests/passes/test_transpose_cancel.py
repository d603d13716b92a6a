"""cancel-transposes: collapsed Transpose pairs must give exactly the same outputs."""

import pytest
from onnx import helper

from edgeopt.ir import infer_shapes

NCHW = [2, 3, 4, 5]
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


def _transpose(x, y, name, perm=None):
    return helper.make_node("Transpose", [x], [y], name=name, **({"perm": perm} if perm is not None else {}))


def _relu(x, y, name):
    return helper.make_node("Relu", [x], [y], name=name)


def test_nchw_nhwc_round_trip_cancels(build_model, apply_pass):
    nodes = [_relu("x", "a", "relu1"), _transpose("a", "nhwc", "to_nhwc", TO_NHWC),
             _transpose("nhwc", "nchw", "to_nchw", TO_NCHW), _relu("nchw", "y", "relu2")]
    model = build_model(nodes, [("x", NCHW)], [("y", NCHW)])

    run = apply_pass("cancel-transposes", model)

    assert run.op_changes == {"Transpose": -2}
    assert run.changes == ["cancelled Transpose pair 'to_nhwc' -> 'to_nchw'"]
    assert run.model.graph.node("relu2").inputs[0].name == "a"
    run.assert_outputs_match()


def test_cancelled_pair_feeding_a_graph_output_hands_its_name_over(build_model, apply_pass):
    nodes = [_relu("x", "a", "relu"), _transpose("a", "t", "first"), _transpose("t", "y", "second")]
    # Without perm, Transpose reverses the axes: the pass needs the rank, which inference gives.
    model = infer_shapes(build_model(nodes, [("x", NCHW)], [("y", NCHW)]))

    run = apply_pass("cancel-transposes", model)

    assert run.op_changes == {"Transpose": -2}
    assert run.changes == ["cancelled Transpose pair 'first' -> 'second'"]
    assert run.model.graph.node("relu").outputs[0].name == "y"
    run.assert_outputs_match()


def test_pair_merges_into_one_transpose(build_model, apply_pass):
    nodes = [_transpose("x", "nhwc", "to_nhwc", TO_NHWC), _transpose("nhwc", "y", "swap", [0, 1, 3, 2])]
    model = build_model(nodes, [("x", NCHW)], [("y", [2, 4, 3, 5])])

    run = apply_pass("cancel-transposes", model)

    assert run.op_changes == {"Transpose": -1}
    assert run.changes == ["merged Transpose 'to_nhwc' into 'swap' (perm [0, 2, 1, 3])"]
    merged = run.model.graph.node("swap")
    assert list(merged.attributes.get_ints("perm")) == [0, 2, 1, 3] and merged.inputs[0].name == "x"
    run.assert_outputs_match()


def test_chain_of_three_collapses_in_one_run(build_model, apply_pass):
    nodes = [_transpose("x", "a", "t1", TO_NHWC), _transpose("a", "b", "t2", [0, 2, 1, 3]),
             _transpose("b", "c", "t3", [0, 2, 1, 3]), _transpose("c", "d", "t4", TO_NCHW), _relu("d", "y", "relu")]
    model = build_model(nodes, [("x", NCHW)], [("y", NCHW)])

    run = apply_pass("cancel-transposes", model)

    assert run.op_changes == {"Transpose": -4}
    assert run.changes == [
        "merged Transpose 't1' into 't2' (perm [0, 3, 2, 1])",
        "merged Transpose 't2' into 't3' (perm [0, 2, 3, 1])",
        "cancelled Transpose pair 't3' -> 't4'",
    ]
    run.assert_outputs_match()


def test_first_transpose_with_another_reader_stays(build_model, apply_pass):
    nodes = [_transpose("x", "nhwc", "to_nhwc", TO_NHWC), _transpose("nhwc", "nchw", "to_nchw", TO_NCHW),
             _relu("nchw", "y", "relu"), _relu("nhwc", "z", "relu_nhwc")]
    model = build_model(nodes, [("x", NCHW)], [("y", NCHW), ("z", [2, 4, 5, 3])])

    run = apply_pass("cancel-transposes", model)

    assert run.op_changes == {"Transpose": -1}
    assert run.changes == ["cancelled Transpose pair 'to_nhwc' -> 'to_nchw'"]
    assert run.model.graph.node("relu").inputs[0].name == "x"
    run.assert_outputs_match()


@pytest.mark.parametrize(("nodes", "outputs"), [
    pytest.param([_transpose("x", "t", "first", TO_NHWC), _transpose("t", "y", "second", TO_NCHW)], [("y", NCHW)],
                 id="graph-input-to-graph-output"),
    pytest.param([_transpose("x", "t", "first", TO_NHWC), _relu("t", "y", "relu")], [("y", [2, 4, 5, 3])],
                 id="single-transpose"),
    pytest.param([_relu("x", "a", "relu"), _transpose("a", "t", "first"), _transpose("t", "y", "second")],
                 [("y", NCHW)], id="default-perm-of-unknown-rank"),
])
def test_left_alone(build_model, apply_pass, nodes, outputs):
    run = apply_pass("cancel-transposes", build_model(nodes, [("x", NCHW)], outputs))

    assert run.changes == []
    assert run.op_changes == {}
    run.assert_outputs_match()
