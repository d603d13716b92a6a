"""GELU spelled out in primitives (x * 0.5 * (1 + erf(x / sqrt 2)), as PyTorch exports it
below opset 20) lowers to one TF gelu, in either association; near misses stay op by op."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lower.against_ort import GraphBuilder, assert_matches_ort


def erf_gelu(shape_of_product: str, add_constant: float = 1.0):
    g = GraphBuilder()
    x = g.input("x", (1, 6, 16), low=-4, high=4)
    scaled = g.node("Div", x, g.weight("root2", np.array(math.sqrt(2), np.float32)))
    inner = g.node("Add", g.node("Erf", scaled), g.weight("one", np.array(add_constant, np.float32)))
    half = g.weight("half", np.array(0.5, np.float32))
    if shape_of_product == "x * (0.5 * inner)":  # torch.onnx's dynamo exporter
        y = g.node("Mul", x, g.node("Mul", half, inner))
    elif shape_of_product == "(x * 0.5) * inner":
        y = g.node("Mul", g.node("Mul", x, half), inner)
    else:  # (x * inner) * 0.5
        y = g.node("Mul", g.node("Mul", x, inner), half)
    return g.model([y]), g.feeds


@pytest.mark.parametrize("association", ["x * (0.5 * inner)", "(x * 0.5) * inner", "(x * inner) * 0.5"])
def test_erf_gelu_becomes_one_gelu_step(association):
    model, feeds = erf_gelu(association)
    lowered = assert_matches_ort(model, feeds)
    assert [step.op_type for step in lowered.steps] == ["Gelu"]


def test_a_near_miss_is_lowered_op_by_op():
    model, feeds = erf_gelu("x * (0.5 * inner)", add_constant=2.0)
    lowered = assert_matches_ort(model, feeds)
    assert "Gelu" not in [step.op_type for step in lowered.steps] and "Erf" in [s.op_type for s in lowered.steps]
