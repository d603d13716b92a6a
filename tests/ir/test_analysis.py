"""Analysis numbers on a model small enough to compute by hand (see conftest.conv_gemm_model)."""

from __future__ import annotations

import onnx_ir as ir
from conftest import conv_gemm_model

from edgeopt.ir import infer_shapes
from edgeopt.ir.analysis import analyze
from edgeopt.ir.arena import Lifetime, greedy_by_size, lifetimes


def analysis():
    return analyze(infer_shapes(ir.from_proto(conv_gemm_model())))


def test_params_and_bytes():
    a = analysis()
    assert a.params == 2 * 9 + 2 + 10 * 32 + 10 == 350
    assert a.param_bytes == {"float32": 1400}


def test_macs_per_node():
    a = analysis()
    by_node = {n.name: n.macs for n in a.nodes}
    # conv: 32 outputs x (1 channel x 3 x 3); fc: 10 outputs x 32 inputs
    assert by_node == {"conv": 288, "relu": 0, "flatten": 0, "fc": 320}
    assert a.macs == 608


def test_op_histogram_and_io():
    a = analysis()
    assert a.op_histogram == {"Conv": 1, "Relu": 1, "Flatten": 1, "Gemm": 1}
    assert [(s.name, s.shape) for s in a.inputs] == [("x", (1, 1, 4, 4))]
    assert [(s.name, s.shape) for s in a.outputs] == [("y", (1, 10))]


def test_lifetimes():
    found, unknown = lifetimes(infer_shapes(ir.from_proto(conv_gemm_model())).graph)
    assert unknown == []
    assert {(t.name, t.size, t.first, t.last) for t in found} == {
        ("x", 64, -1, 0), ("c", 128, 0, 1), ("r", 128, 1, 2), ("f", 128, 2, 3), ("y", 40, 3, 4),
    }


def test_arena_greedy_by_size():
    # c@0; r overlaps c -> @128; f overlaps only r -> @0; x overlaps c -> @128; y overlaps f -> @128
    plan = analysis().arena
    assert plan.offsets == {"c": 0, "r": 128, "f": 0, "x": 128, "y": 128}
    assert plan.size == 256
    assert plan.live_peak == 256


def test_greedy_fills_gaps():
    tensors = [Lifetime("a", 100, 0, 1), Lifetime("b", 50, 1, 2), Lifetime("c", 50, 2, 3), Lifetime("d", 40, 0, 3)]
    offsets = greedy_by_size(tensors)
    # a@0; b overlaps a -> @100; c overlaps b only -> @0; d overlaps all -> after b at 150
    assert offsets == {"a": 0, "b": 100, "c": 0, "d": 150}
    assert max(offsets[t.name] + t.size for t in tensors) == 190
    assert sum(t.size for t in tensors if t.first <= 1 <= t.last) == 190  # so the plan is optimal
