"""Sharing repeated flatbuffer vectors: same model, same outputs bit for bit, fewer bytes."""

from __future__ import annotations

import flatbuffers
import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgeopt.lower import lower
from edgeopt.tflite.compact import BUFFER_ALIGNMENT, share_vectors
from edgeopt.tflite.convert import convert, representative_data
from edgeopt.tflite.reader import read_tflite
from edgetpu.tflite_models import run_once
from lower.against_ort import GraphBuilder


def two_conv_model():
    """Two per-channel int8 convs of 8 channels: their weights and biases carry 4 all-zero
    zero-point vectors of 8 int64 each, 3 of them repeats."""
    g = GraphBuilder()
    x = g.input("x", (1, 3, 8, 8))
    hidden = g.node("Relu", g.conv(x, 3, 8, pads=[1, 1, 1, 1]))
    g.conv(hidden, 8, 8, kernel=1, name="y")
    return ir.from_proto(g.model(["y"]))


def unshared(data: bytes) -> bytes:
    """The same model written the plain way: every vector stored where it is used."""
    builder = flatbuffers.Builder(len(data))
    builder.Finish(schema.ModelT.InitFromPackedBuf(data, 0).Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def buffer_data_starts(data: bytes) -> list[int]:
    model = schema.Model.GetRootAs(data, 0)
    starts = []
    for i in range(model.BuffersLength()):
        table = model.Buffers(i)._tab
        field = table.Offset(4)  # Buffer.data
        if field and table.VectorLen(field):
            starts.append(table.Vector(field))
    return starts


def test_shared_model_is_the_same_model_in_fewer_bytes():
    lowered = lower(two_conv_model())
    feeds = [{"x": np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32)} for i in range(8)]
    plain = unshared(convert(lowered, "int8", representative=representative_data(lowered, feeds)))
    shared = share_vectors(plain)

    assert len(plain) - len(shared) >= 3 * 8 * 8  # at least the three repeated zero-point vectors
    before, after = read_tflite(plain), read_tflite(shared)
    assert [(t.name, t.shape, t.dtype, t.scale, t.zero_point, t.data_bytes) for t in before.tensors] == \
           [(t.name, t.shape, t.dtype, t.scale, t.zero_point, t.data_bytes) for t in after.tensors]
    x = np.random.default_rng(9).integers(-128, 128, (1, 8, 8, 3), dtype=np.int8)
    np.testing.assert_array_equal(run_once(plain, x), run_once(shared, x))
    assert buffer_data_starts(shared) and all(s % BUFFER_ALIGNMENT == 0 for s in buffer_data_starts(shared))
