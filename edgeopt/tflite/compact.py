"""Store each distinct vector of a .tflite flatbuffer once.

Per-channel int8 stores a float32 scale and an int64 zero point per output channel on every
weight and bias tensor. The zero points are all 0, so a model holds the same zero-point
vector dozens of times (434 KB of a 3.99 MB MobileNetV2). Flatbuffers lets many tables point
at one vector; readers (LiteRT, tflite-runtime, XNNPACK's weight packing) copy the values out
and never see the sharing. Buffer data keeps the schema's 16-byte alignment
(`data:[ubyte] (force_align: 16)` in tensorflow/compiler/mlir/lite/schema/schema.fbs).
"""

from __future__ import annotations

import flatbuffers
import numpy as np

BUFFER_ALIGNMENT = 16
FILE_IDENTIFIER = b"TFL3"


class _SharingBuilder(flatbuffers.Builder):
    """A Builder whose numpy vectors are written once per distinct (dtype, content)."""

    def __init__(self, size: int):
        super().__init__(size)
        self.written: dict[tuple[str, bytes], int] = {}

    def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' name, called by the generated Pack()
        key = (x.dtype.str, x.tobytes())
        if key not in self.written:
            self.written[key] = self._aligned_bytes(x) if x.dtype == np.uint8 else super().CreateNumpyVector(x)
        return self.written[key]

    def _aligned_bytes(self, x: np.ndarray) -> int:
        self.StartVector(1, x.size, BUFFER_ALIGNMENT)
        self.head -= x.size
        self.Bytes[self.head:self.head + x.size] = x.tobytes()
        self.vectorNumElems = x.size
        return self.EndVector()


def share_vectors(data: bytes) -> bytes:
    """The same model with repeated vectors stored once; unchanged if buffers live outside it."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if any(buffer.offset > 1 for buffer in model.buffers or ()):  # >2 GB layout: data appended after the flatbuffer
        return data
    builder = _SharingBuilder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
