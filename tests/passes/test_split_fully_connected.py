"""split-fully-connected: pieces of at most the given int8 weight bytes, the same function
(every output column keeps its own weights and bias), and nothing split below the limit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

K, N = 64, 40  # 2,560 weight bytes


def _gemm(build_model, rng, trans_b: int, bias_shape=(N,)):
    weight = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=trans_b, alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    constants = {"w": weight, "b": rng.standard_normal(bias_shape).astype(np.float32)}
    return build_model(nodes, [("x", [1, K])], [("z", [1, N])], constants)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_a_gemm_over_the_limit_becomes_pieces_joined_by_a_concat(build_model, apply_pass, rng, trans_b):
    run = apply_pass("split-fully-connected", _gemm(build_model, rng, trans_b), {"max_weight_bytes": 1000})

    assert run.op_changes == {"Gemm": 2, "Concat": 1}  # 3 pieces replace 1
    assert run.changes == ["Gemm node 'fc' (64x40, 2,560 int8 weight bytes) -> 3 pieces of at most 14 columns + Concat"]
    pieces = [n for n in run.model.graph if n.op_type == "Gemm"]
    assert [p.inputs[1].const_value.numpy().size for p in pieces] == [K * 14, K * 14, K * 12]  # each <= 1,000
    assert set(run.model.graph.initializers) == {f"fc.{i}.{part}" for i in range(3) for part in ("weight", "bias")}
    run.assert_outputs_match(rtol=1e-6, atol=1e-6)


def test_a_scalar_bias_is_shared_by_the_pieces(build_model, apply_pass, rng):
    run = apply_pass("split-fully-connected", _gemm(build_model, rng, 0, bias_shape=()), {"max_weight_bytes": 1300})
    pieces = [n for n in run.model.graph if n.op_type == "Gemm"]
    assert len(pieces) == 2 and pieces[0].inputs[2] is pieces[1].inputs[2]
    run.assert_outputs_match(rtol=1e-6, atol=1e-6)


def test_a_matmul_on_tokens_splits_on_the_last_axis(build_model, apply_pass, rng):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")]
    model = build_model(nodes, [("x", [1, 5, K])], [("y", [1, 5, N])], {"w": rng.standard_normal((K, N)).astype(np.float32)})

    run = apply_pass("split-fully-connected", model, {"max_weight_bytes": 1300})

    assert run.op_changes == {"MatMul": 1, "Concat": 1}
    assert run.model.graph.outputs[0].name == "y"
    run.assert_outputs_match(rtol=1e-6, atol=1e-6)


def test_only_the_named_nodes_and_only_over_the_limit(build_model, apply_pass, rng):
    model = _gemm(build_model, rng, 0)
    assert apply_pass("split-fully-connected", model, {"max_weight_bytes": 2560}).changes == []
    assert apply_pass("split-fully-connected", model, {"max_weight_bytes": 100, "nodes": ["other"]}).changes == []
