"""Shared by test_ops.py and test_layout.py: build a small float32 ONNX model with seeded
random weights and inputs, run it in onnxruntime and through our lowering, and compare the
outputs in ONNX layout."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from edgeopt.ir import ort_session
from edgeopt.lower import LoweredModel, lower

# float32 kernels sum in another order than onnxruntime's; activations here are O(1-10)
RTOL, ATOL = 1e-4, 1e-5
SAME_PADS = [1, 1, 1, 1]  # a 3x3 window keeps the size


class GraphBuilder:
    """The nodes, graph inputs, initializers and feeds of one test model, from one rng."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: dict[str, tuple] = {}
        self.weights: dict[str, np.ndarray] = {}
        self.feeds: dict[str, np.ndarray] = {}

    def random(self, shape, low: float = -1.0, high: float = 1.0) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def input(self, name: str, shape, low: float = -1.0, high: float = 1.0) -> str:
        self.inputs[name] = tuple(shape)
        self.feeds[name] = self.random(shape, low, high)
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        self.weights[name] = np.asarray(array)
        return name

    def node(self, op: str, *inputs: str, name: str | None = None, outputs: int = 1, **attrs):
        """Add a node; returns its output name (a list when it has several)."""
        name = name or f"{op.lower()}{len(self.nodes)}"
        names = [name] if outputs == 1 else [f"{name}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def conv(self, x: str, in_channels: int, out_channels: int, kernel: int = 3, group: int = 1,
             low: float = -1.0, high: float = 1.0, name: str | None = None, **attrs) -> str:
        """A Conv with random weight and bias in [low, high)."""
        name = name or f"conv{len(self.nodes)}"
        weight = self.weight(f"{name}_w", self.random((out_channels, in_channels // group, kernel, kernel), low, high))
        bias = self.weight(f"{name}_b", self.random(out_channels, low, high))
        return self.node("Conv", x, weight, bias, name=name, group=group, **attrs)

    def gemm(self, x: str, in_features: int, out_features: int, name: str | None = None) -> str:
        """A Gemm with a random [out, in] weight (transB, as PyTorch's Linear exports) and bias."""
        name = name or f"gemm{len(self.nodes)}"
        weight = self.weight(f"{name}_w", self.random((out_features, in_features)))
        bias = self.weight(f"{name}_b", self.random(out_features))
        return self.node("Gemm", x, weight, bias, name=name, transB=1)

    def model(self, outputs: list[str], opset: int = 18) -> onnx.ModelProto:
        """Outputs are declared with their inferred type (int64 indices, booleans) and without
        a shape: onnxruntime infers and checks it."""
        graph = helper.make_graph(
            self.nodes, "case",
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in self.inputs.items()],
            [helper.make_empty_tensor_value_info(name) for name in outputs],
            [numpy_helper.from_array(array, name) for name, array in self.weights.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        try:
            inferred = onnx.shape_inference.infer_shapes(model).graph.output
        except onnx.shape_inference.InferenceError:  # an op of a custom domain: float, as declared
            inferred = []
        for output, found in zip(model.graph.output, inferred):
            output.type.tensor_type.elem_type = found.type.tensor_type.elem_type
        for output in model.graph.output:
            output.type.tensor_type.elem_type = output.type.tensor_type.elem_type or TensorProto.FLOAT
        return model


def moved(lowered: LoweredModel) -> list[str]:
    """Steps the layout machinery inserted (transposes, size-1 reshapes, Flatten reorders)."""
    return [f"{step.op_type} {step.name}" for step in lowered.steps if step.op_type in ("Transpose*", "Gather*")]


def assert_matches_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = RTOL,
                       atol: float = ATOL, edgetpu: bool = False) -> LoweredModel:
    """Every output of the lowered model equals onnxruntime's; returns the lowered model."""
    expected = ort_session(model.SerializeToString()).run(None, feeds)
    lowered = lower(ir.from_proto(model), edgetpu)
    results = lowered({port.name: np.transpose(feeds[port.name], port.perm) for port in lowered.inputs})
    assert len(results) == len(expected)
    for port, result, want in zip(lowered.outputs, results, expected):
        got = np.transpose(np.asarray(result), np.argsort(port.perm))
        assert got.shape == want.shape, f"output {port.name}: shape {got.shape}, onnxruntime {want.shape}"
        if want.dtype.kind in "iub":  # indices, masks: exact, and of ONNX's type
            assert got.dtype == want.dtype, f"output {port.name}: {got.dtype}, onnxruntime {want.dtype}"
            np.testing.assert_array_equal(got, want, err_msg=f"output {port.name}")
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=False, err_msg=f"output {port.name}")
    return lowered
