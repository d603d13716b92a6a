"""A one-conv ONNX model: tuning it takes seconds."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from lower.against_ort import SAME_PADS, GraphBuilder


@pytest.fixture
def one_conv(tmp_path):
    g = GraphBuilder(seed=0)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 4, pads=SAME_PADS, name="conv"), name="y")
    model = g.model([x])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]))
    onnx.save(model, tmp_path / "conv.onnx")
    return tmp_path / "conv.onnx"
