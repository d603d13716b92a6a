"""Ops spelled out in primitives lower as one: GELU (x * 0.5 * (1 + erf(x / sqrt 2)), as
PyTorch exports it below opset 20) in either association, and GroupNorm (Reshape,
InstanceNormalization, Reshape); near misses stay op by op."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from lower.against_ort import GraphBuilder, assert_matches_ort, moved


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


def exported_group_norm(groups: int, restore_shape: bool = True):
    """GroupNorm as torch exports it: Reshape [N, G, -1], InstanceNormalization, Reshape
    back, then the per-channel affine; between two convs, so the map arrives in NHWC."""
    g = GraphBuilder()
    x = g.conv(g.input("image", (1, 3, 5, 5)), 3, 6, pads=[1, 1, 1, 1])
    grouped = g.node("Reshape", x, g.weight("grouped", np.array([1, groups, -1])))
    normed = g.node("InstanceNormalization", grouped, g.weight("ones", np.ones(groups, np.float32)),
                    g.weight("zeros", np.zeros(groups, np.float32)), epsilon=1e-5)
    back = np.array([1, 6, 5, 5] if restore_shape else [1, 6, 25])
    y = g.node("Reshape", normed, g.weight("back", back))
    if restore_shape:
        y = g.node("Mul", y, g.weight("gamma", g.random((6, 1, 1))))
        y = g.node("Add", y, g.weight("beta", g.random((6, 1, 1))))
        y = g.conv(y, 6, 4, pads=[1, 1, 1, 1])
    return onnx.shape_inference.infer_shapes(g.model([y])), g.feeds  # as the frontends leave every model


@pytest.mark.parametrize("groups", [1, 3])
def test_exported_group_norm_is_one_group_norm_step_without_transposes(groups):
    model, feeds = exported_group_norm(groups)
    lowered = assert_matches_ort(model, feeds, atol=1e-4)
    kinds = [step.op_type for step in lowered.steps]
    assert "GroupNormalization" in kinds and "InstanceNormalization" not in kinds and "Reshape" not in kinds
    assert moved(lowered) == []


def test_group_norm_not_restored_to_the_input_shape_is_lowered_op_by_op():
    model, feeds = exported_group_norm(2, restore_shape=False)
    lowered = assert_matches_ort(model, feeds)
    assert "InstanceNormalization" in [step.op_type for step in lowered.steps]
