"""The TFLite converter in its own process (edgeopt.tflite.isolated): a crash or a runaway
becomes exit 7 naming what the converter was doing, and calibration memory does not grow
with the number of samples, on either side of the process boundary."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import conv_gemm_model
from edgeopt.backends.base import CompileOptions
from edgeopt.backends.tflite import calibrate_and_convert
from edgeopt.cli import main
from edgeopt.data import Dataset
from edgeopt.errors import CompileError
from edgeopt.lower import lower
from edgeopt.progress import Progress
from edgeopt.tflite.convert import convert, representative_data
from edgeopt.tflite.isolated import MEMORY_ENV

SIDE = 256  # a 3x256x256 float sample is 786 kB: holding 128 of them would show


def test_a_converter_segfault_is_a_compile_error_naming_the_stage():
    """An Inf in the calibration samples segfaults TF 2.21's calibrator (data.py refuses it
    from files; here it reaches the converter directly)."""
    lowered = lower(ir.from_proto(conv_gemm_model()))
    feeds = [{"x": np.full((1, 1, 4, 4), np.inf, np.float32)}] * 4
    with pytest.raises(CompileError) as info:
        convert(lowered, "int8", representative=representative_data(lowered, feeds))
    assert info.value.exit_code == 7
    assert "the TFLite converter (int8) crashed (SIGSEGV) while " in info.value.message
    assert any(stage in info.value.message for stage in ("calibrating (sample", "quantizing"))


def test_a_converter_over_its_memory_limit_exits_7_naming_the_stage_without_traceback(
        capsys, tmp_path, monkeypatch, conv_gemm_path):
    """64 MB is less than the converter needs to load TensorFlow's model: stopped, not swapping."""
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).standard_normal((8, 1, 4, 4)).astype(np.float32))
    monkeypatch.setenv(MEMORY_ENV, "64")
    with pytest.raises(SystemExit) as info:
        main(["build", str(conv_gemm_path), "--target", "tflite", "--quant", "int8", "--calib",
              str(tmp_path / "calib.npz"), "--out", str(tmp_path / "dist"), "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 7
    assert "the TFLite converter (int8) was stopped while" in err and "more than its limit of 64 MB" in err
    assert "Traceback" not in err
    assert not (tmp_path / "dist").exists()


def _pooled_conv() -> ir.Model:
    """x[1,3,256,256] -> Conv(4, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(4->3)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w", (4, 3, 3, 3)), ("b", (4,)), ("gw", (3, 4)), ("gb", (3,)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "pooled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], weights)
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _calibration_cost(samples: int) -> tuple[float, float]:
    """(this process's tracemalloc peak, the converter child's peak RSS), in MB, for an int8
    conversion calibrated on `samples` samples; the data set itself is allocated beforehand."""
    x = np.random.default_rng(samples).standard_normal((samples, 3, SIDE, SIDE)).astype(np.float32)
    options = CompileOptions("int8", Dataset({"x": x}, None, "test"), "int8")
    progress = Progress(quiet=True)
    tracemalloc.start()
    try:
        with progress.step("convert"):
            calibrate_and_convert(_pooled_conv(), options)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return peak, progress.stages[0].child_peak_rss_mb


def test_calibration_memory_does_not_grow_with_the_number_of_samples():
    """16 vs 128 samples: holding the 112 extra ones (or their TF-layout copies) would add
    88 MB on either side; streaming them adds nothing but noise."""
    _calibration_cost(16)  # the converter's fork server starts here, not in a measurement
    small, small_child = _calibration_cost(16)
    large, large_child = _calibration_cost(128)
    assert large < small + 10, (small, large)
    assert large_child < small_child + 30, (small_child, large_child)
