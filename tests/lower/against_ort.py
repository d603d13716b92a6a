"""Shared by test_ops.py and test_layout.py: build a small float32 ONNX model, run it in
onnxruntime and through our lowering on the same inputs, and compare in ONNX layout."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from edgeopt.ir import ort_session
from edgeopt.lower import LoweredModel, lower

# float32 kernels sum in a different order than onnxruntime's; activations here are O(1-10)
RTOL, ATOL = 1e-4, 1e-5


def make_model(nodes, inputs: dict, outputs: list[str], weights: dict | None = None,
               opset: int = 18) -> onnx.ModelProto:
    """`inputs` maps names to shapes, `weights` names to arrays; outputs have no shape (onnxruntime
    infers and checks them)."""
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(array, name) for name, array in (weights or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def moved(lowered: LoweredModel) -> list[str]:
    """Steps the layout machinery inserted (transposes, size-1 reshapes, Flatten reorders)."""
    return [f"{step.op_type} {step.name}" for step in lowered.steps if step.op_type in ("Transpose*", "Gather*")]


def assert_matches_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = RTOL,
                       atol: float = ATOL) -> LoweredModel:
    """Every output of the lowered model equals onnxruntime's; returns the lowered model."""
    expected = ort_session(model.SerializeToString()).run(None, feeds)
    lowered = lower(ir.from_proto(model))
    results = lowered({port.name: np.transpose(feeds[port.name], port.perm) for port in lowered.inputs})
    assert len(results) == len(expected)
    for port, result, want in zip(lowered.outputs, results, expected):
        got = np.transpose(np.asarray(result), np.argsort(port.perm))
        assert got.shape == want.shape, f"output {port.name}: shape {got.shape}, onnxruntime {want.shape}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=False, err_msg=f"output {port.name}")
    return lowered
