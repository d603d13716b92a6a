"""An AveragePool whose one window covers the whole map lowers to a MEAN (own int8 output
scale), not AVERAGE_POOL_2D (int8 output must keep the input's scale)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgeopt.lower import lower


def pool_model(**attributes) -> ir.Model:
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], name="pool", **attributes)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def tf_ops(lowered) -> set[str]:
    return {op.type for op in lowered.function().graph.get_operations()}


@pytest.mark.parametrize("attributes", [
    dict(kernel_shape=[7, 7]),
    # transformers' EfficientNet: nn.AvgPool2d(1280, ceil_mode=True) on its 7x7 map
    dict(kernel_shape=[1280, 1280], strides=[1280, 1280], ceil_mode=1),
])
def test_a_whole_map_window_is_a_mean(attributes):
    lowered = lower(pool_model(**attributes))
    ops = tf_ops(lowered)
    assert "Mean" in ops and "AvgPool" not in ops
    x = np.random.default_rng(0).standard_normal((1, 3, 7, 7)).astype(np.float32)
    (y,) = lowered({"x": np.transpose(x, (0, 2, 3, 1))})
    np.testing.assert_allclose(np.asarray(y).reshape(3), x.mean((2, 3)).reshape(3), rtol=1e-5, atol=1e-6)


def test_a_window_counting_pads_stays_a_pool():
    lowered = lower(pool_model(kernel_shape=[7, 7], pads=[1, 1, 1, 1], count_include_pad=1))
    assert "AvgPool" in tf_ops(lowered)
