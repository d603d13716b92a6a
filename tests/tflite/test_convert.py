"""Converter failures become our errors: exit 7 with the converter's own words, not its logs."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.errors import CompileError
from edgeopt.lower import lower
from edgeopt.tflite.convert import convert, representative_data
from lower.against_ort import GraphBuilder


def test_a_failing_calibration_run_is_exit_7_with_the_converters_reason():
    """Calibration samples already in NHWC get transposed once more, so in the converter's own
    calibration run the conv sees the wrong channel count. `edgeopt build` refuses such data
    before converting (exit 9); convert() itself must still report the failure clearly."""
    g = GraphBuilder()
    g.conv(g.input("x", (1, 3, 4, 6)), 3, 4, kernel=1, name="y")
    lowered = lower(ir.from_proto(g.model(["y"])))
    nhwc = np.random.default_rng(0).standard_normal((1, 4, 6, 3)).astype(np.float32)

    with pytest.raises(CompileError) as info:
        convert(lowered, "int8", representative=representative_data(lowered, [{"x": nhwc}] * 4))

    message = info.value.message
    assert info.value.exit_code == 7
    assert message.startswith("the TFLite converter failed (int8): ")
    assert "failed to prepare" in message and "I0000" not in message and "loader.cc" not in message
