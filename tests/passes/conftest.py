"""Shared builders for the pass tests: small opset-18 models, and one pass run measured end to end.

The helpers are fixtures (`build_model`, `apply_pass`, `measure`) because pytest runs with
--import-mode=importlib, where a test module cannot import its conftest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgeopt.ir import ort_session, to_bytes
from edgeopt.passes import make_pass

OPSET = 18


def _tensor_info(spec) -> onnx.ValueInfoProto:
    """`("x", [1, 3])` is a float tensor; a ValueInfoProto is used as is."""
    if isinstance(spec, onnx.ValueInfoProto):
        return spec
    name, shape = spec
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _build_model(nodes, inputs, outputs, initializers=None) -> ir.Model:
    """A checked opset-18 model; `initializers` maps names to numpy arrays."""
    graph = helper.make_graph(
        nodes, "test",
        [_tensor_info(spec) for spec in inputs],
        [_tensor_info(spec) for spec in outputs],
        initializer=[onnx.numpy_helper.from_array(array, name) for name, array in (initializers or {}).items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(proto, full_check=True)
    return ir.from_proto(proto)


def _random_inputs(model: ir.Model, seed: int = 0) -> dict[str, np.ndarray]:
    """Normal floats, small ints, and False for booleans (a true training_mode would make Dropout random)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.inputs:
        dtype, shape = value.dtype.numpy(), value.shape.numpy()
        if dtype == np.bool_:
            feeds[value.name] = np.zeros(shape, dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _run_model(model_bytes: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort_session(model_bytes)
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _op_histogram(model: ir.Model) -> Counter:
    return Counter(node.op_type for node in model.graph)


@dataclass
class PassRun:
    model: ir.Model
    changes: list  # what the rewrite returned: change lines, or PassReports for run_passes
    op_changes: dict[str, int]  # op type -> count after minus count before, zero entries left out
    outputs_before: dict[str, np.ndarray]  # graph output name -> value, with onnxruntime
    outputs_after: dict[str, np.ndarray]

    def assert_outputs_match(self, rtol: float = 0.0, atol: float = 0.0) -> None:
        """Exactly equal by default; a tolerance only where the rewrite reorders float arithmetic."""
        assert self.outputs_after.keys() == self.outputs_before.keys()
        for name, expected in self.outputs_before.items():
            if rtol == atol == 0.0:
                np.testing.assert_array_equal(self.outputs_after[name], expected, err_msg=name)
            else:
                np.testing.assert_allclose(self.outputs_after[name], expected, rtol=rtol, atol=atol, err_msg=name)


def _measure(model: ir.Model, rewrite: Callable[[ir.Model], tuple[ir.Model, list]]) -> PassRun:
    """Rewrite `model` and measure it: ops, what the rewrite reported, outputs on random inputs.

    The rewritten model must still pass the ONNX checker.
    """
    feeds = _random_inputs(model)
    before_bytes, ops_before = to_bytes(model), _op_histogram(model)
    model, changes = rewrite(model)
    after_bytes, ops_after = to_bytes(model), _op_histogram(model)
    onnx.checker.check_model(onnx.load_from_string(after_bytes), full_check=True)
    op_changes = {op: ops_after[op] - ops_before[op] for op in ops_before | ops_after
                  if ops_after[op] != ops_before[op]}
    return PassRun(model, changes, op_changes, _run_model(before_bytes, feeds), _run_model(after_bytes, feeds))


def _apply_pass(name: str, model: ir.Model, params: dict | None = None) -> PassRun:
    return _measure(model, lambda m: (m, make_pass(name, params).apply(m)))


@pytest.fixture
def build_model():
    return _build_model


@pytest.fixture
def apply_pass():
    return _apply_pass


@pytest.fixture
def measure():
    return _measure


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
