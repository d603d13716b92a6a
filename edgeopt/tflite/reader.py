"""Read a .tflite flatbuffer into plain records: operators with their opcode and version,
tensors with dtype, shape and quantization, and constant buffer sizes.

Uses the schema module that ships with ai-edge-litert, so any .tflite can be inspected
without TensorFlow, whichever tool made it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.errors import ModelError

SMALL_INT_TYPES = {"INT32": "<i4", "INT64": "<i8"}
SMALL_INT_LIMIT = 16  # enough for pads, axes, shapes and strides of a 4-D tensor


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str  # TFLite TensorType name: FLOAT32, INT8, ...
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dim
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data_bytes: int = 0  # > 0 for constants (weights, biases)
    values: tuple[int, ...] | None = None  # small integer constants (axes, paddings, shapes, strides)

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    @property
    def constant(self) -> bool:
        return self.data_bytes > 0


@dataclass(frozen=True)
class OperatorInfo:
    index: int
    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)  # builtin options that matter (activation, axis, ...)


@dataclass
class TfliteModel:
    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int
    size: int
    signature_outputs: dict[str, int] = field(default_factory=dict)  # signature output name -> tensor

    def op_counts(self) -> Counter:
        return Counter(op.opcode for op in self.operators)

    def tensor(self, index: int) -> TensorInfo:
        return self.tensors[index]

    @property
    def constant_bytes(self) -> int:
        return sum(t.data_bytes for t in self.tensors)

    def producer(self, tensor: int) -> OperatorInfo | None:
        return next((op for op in self.operators if tensor in op.outputs), None)


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _options(op) -> dict:
    options = op.builtinOptions
    if options is None:
        return {}
    wanted = ("fusedActivationFunction", "axis", "strideH", "strideW", "padding", "depthMultiplier", "keepDims",
              "alignCorners", "halfPixelCenters", "beta", "newShape", "dilationHFactor", "dilationWFactor",
              "weightsFormat", "ellipsisMask", "newAxisMask", "squeezeDims")
    found = {k: getattr(options, k) for k in wanted if hasattr(options, k)}
    return {k: (list(v) if isinstance(v, np.ndarray) else v) for k, v in found.items()}


def _small_ints(buffer, dtype: str) -> tuple[int, ...] | None:
    if dtype not in SMALL_INT_TYPES or buffer is None or buffer.data is None:
        return None
    values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), SMALL_INT_TYPES[dtype])
    return tuple(int(v) for v in values) if values.size <= SMALL_INT_LIMIT else None


def read_tflite(source: bytes | Path) -> TfliteModel:
    from ai_edge_litert import schema_py_generated as schema

    if isinstance(source, Path) and not source.is_file():
        raise ModelError(f"{source}: no such file", hint="Check the path of the .tflite model.")
    data = source.read_bytes() if isinstance(source, Path) else source
    if len(data) < 8 or data[4:8] != b"TFL3":
        where = source if isinstance(source, Path) else "the data"
        raise ModelError(f"{where} is not a TFLite flatbuffer (no TFL3 identifier)",
                         hint="Pass a .tflite file produced by a TFLite converter.")
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    opcodes, types = _names(schema.BuiltinOperator), _names(schema.TensorType)
    buffers = model.buffers or []
    graph = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(graph.tensors):
        q = t.quantization
        scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
        zero = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
        buffer = buffers[t.buffer] if t.buffer < len(buffers) else None
        size = len(buffer.data) if buffer is not None and buffer.data is not None else int(getattr(buffer, "size", 0) or 0)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
        dtype = types.get(t.type, str(t.type))
        tensors.append(TensorInfo(i, (t.name or b"").decode(), dtype, shape, signature, scale, zero,
                                  int(q.quantizedDimension) if q is not None else 0, size, _small_ints(buffer, dtype)))
    operators = []
    for i, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = (code.customCode or b"").decode() if opcodes.get(builtin) == "CUSTOM" else opcodes.get(builtin, str(builtin))
        operators.append(OperatorInfo(i, name, int(code.version), tuple(int(x) for x in op.inputs),
                                      tuple(int(x) for x in op.outputs), _options(op)))
    signature = (model.signatureDefs or [None])[0]
    signature_outputs = {o.name.decode(): int(o.tensorIndex) for o in (signature.outputs or [])} if signature else {}
    return TfliteModel(tensors, operators, [int(x) for x in graph.inputs], [int(x) for x in graph.outputs],
                       len(model.subgraphs), len(data), signature_outputs)
