"""Session-wide fixtures: the example digits model and a MobileNetV2-style net (both trained
here on real data), and tiny hand-built ONNX models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The example model exactly as `make demo` makes it (fewer epochs: still ~98-99%)."""
    from make_example import make_example

    return make_example(tmp_path_factory.mktemp("digits"), epochs=4)


@pytest.fixture(scope="session")
def mobilenet(tmp_path_factory):
    """A MobileNetV2-style net trained here on the digits: .pt2, .onnx, calibration and eval data."""
    from mobilenet_v2 import make_digits_mobilenet

    return make_digits_mobilenet(tmp_path_factory.mktemp("mobilenet"), epochs=4)


def conv_gemm_model() -> onnx.ModelProto:
    """x[1,1,4,4] -> Conv(2 filters, 3x3, pad 1) -> Relu -> Flatten -> Gemm(32->10) -> y[1,10].

    By hand: params 2*9+2 + 10*32+10 = 350 (1,400 B float32); MACs 32*9 + 10*32 = 608;
    arena (greedy by size) 256 B: see tests/ir/test_analysis.py.
    """
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((10, 32)).astype(np.float32), "gw"),
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "gb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(nodes, "conv_gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.fixture
def conv_gemm_path(tmp_path):
    path = tmp_path / "conv_gemm.onnx"
    onnx.save(conv_gemm_model(), path)
    return path


@pytest.fixture
def board_without_tvm_target(tmp_path):
    """A user's own profile: the rpi4's, without `tvm_target`."""
    from edgeopt.profiles import load_profile

    text = load_profile("rpi4").path.read_text()
    path = tmp_path / "my-board.toml"
    path.write_text(text.replace('name = "rpi4"', 'name = "my-board"').replace('tvm_target = "raspberry-pi/4b-aarch64"\n', ""))
    return path
