"""Activation range choices on known distributions, and which tensors get a range."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.lower import lower
from edgeopt.quant.ranges import BINS, Histogram, _mse_range, _percentile_range, activation_ranges, range_keys


def histogram(values: np.ndarray) -> Histogram:
    low, high = min(values.min(), 0.0), max(values.max(), 0.0)
    return Histogram(low, high, np.histogram(values, BINS, (low, high))[0].astype(float))


def test_percentile_ignores_a_rare_outlier():
    values = np.concatenate([np.random.default_rng(0).uniform(0, 1, 1_000_000), [50.0]])
    low, high = _percentile_range(histogram(values))
    assert low == 0.0 and 0.99 <= high <= 1.05  # 99.99th percentile of U(0, 1), one bin's width of slack


def test_mse_clips_a_laplace_tail_where_theory_says_and_keeps_a_uniform_range():
    """For Laplace(0, b) at 8 bits the MSE-optimal clip is +-9.89 b (Banner et al. 2019,
    "Post training 4-bit quantization of convolutional networks", ACIQ, table 1)."""
    rng = np.random.default_rng(0)
    laplace = rng.laplace(0, 1, 1_000_000)
    low, high = _mse_range(histogram(laplace))
    assert (high - low) / 2 == pytest.approx(9.89, rel=0.05)
    assert high < laplace.max() and low > laplace.min()
    uniform = rng.uniform(-1, 1, 200_000)
    low, high = _mse_range(histogram(uniform))
    assert low == pytest.approx(-1, abs=0.02) and high == pytest.approx(1, abs=0.02)


def conv_relu_pool_model() -> ir.Model:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="pool")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])], [weight])
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def test_ranges_skip_the_fused_conv_output_and_scale_keeping_ops():
    lowered = lower(conv_relu_pool_model())
    named = {step.outputs[0]: step.node for step in lowered.steps}
    keys = range_keys(lowered)
    assert [named.get(k, "input") for k in keys] == ["input", "relu"]  # not conv (fused), not pool (same scale)


def test_minmax_ranges_are_the_observed_extremes_and_include_zero():
    lowered = lower(conv_relu_pool_model())
    feeds = [{"x": np.random.default_rng(i).uniform(1, 2, (1, 2, 6, 6)).astype(np.float32)} for i in range(4)]
    ranges = activation_ranges(lowered, feeds, "minmax")
    input_key = lowered.inputs[0].key
    assert ranges[input_key][0] == 0.0  # data in [1, 2]: the range is widened to hold 0
    assert ranges[input_key][1] == pytest.approx(max(f["x"].max() for f in feeds))


def test_average_pool_keeps_its_input_scale_so_the_converter_accepts_it():
    """int8 AVERAGE_POOL_2D needs its input's scale: a min/max range of its own (narrower, since
    it averages), met by a Concat's, made the converter fail "quantization parameters violate
    the same scale constraint" (keras DenseNet121: each transition pool feeds a dense block's
    concatenation)."""
    from edgeopt.tflite.convert import convert, representative_data
    from lower.against_ort import SAME_PADS, GraphBuilder

    g = GraphBuilder(seed=6)
    x = g.conv(g.input("image", (1, 3, 8, 8)), 3, 4, pads=SAME_PADS)
    x = g.node("AveragePool", x, name="pool", kernel_shape=[2, 2], strides=[2, 2])
    dense = g.node("Concat", x, g.conv(x, 4, 4, pads=SAME_PADS), axis=1)
    lowered = lower(ir.from_proto(g.model([dense])))
    feeds = [{"image": np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32)} for i in range(8)]
    ranges = activation_ranges(lowered, feeds, "minmax")
    pool = next(step.outputs[0] for step in lowered.steps if step.node == "pool")
    assert pool not in ranges
    lowered.set_ranges(ranges)
    assert convert(lowered, "int8", representative=representative_data(lowered, feeds))[4:8] == b"TFL3"
