"""The .tflite reader on a model converted here, and on bytes that are not a flatbuffer."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import ModelError
from edgeopt.lower import lower
from edgeopt.tflite.convert import convert
from edgeopt.tflite.reader import read_tflite
from quant.test_ranges import conv_relu_pool_model


def test_reads_ops_versions_tensors_and_weights():
    model = read_tflite(convert(lower(conv_relu_pool_model()), "float32"))
    assert [op.opcode for op in model.operators] == ["CONV_2D", "MAX_POOL_2D"]
    assert all(op.version >= 1 for op in model.operators)
    conv = model.operators[0]
    assert conv.options["fusedActivationFunction"] == 1  # RELU fused into the conv
    weight = model.tensor(conv.inputs[1])
    assert weight.shape == (4, 3, 3, 2) and weight.dtype == "FLOAT32" and weight.data_bytes == 4 * 72
    assert model.constant_bytes == 4 * 72 + 4 * 4  # kernel plus the (zero) bias
    assert model.tensor(model.inputs[0]).shape == (1, 6, 6, 2)
    assert model.producer(model.outputs[0]) is model.operators[1]


def test_refuses_bytes_that_are_not_tflite(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        read_tflite(path)
