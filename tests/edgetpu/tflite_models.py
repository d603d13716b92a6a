"""Small real .tflite models for the Edge TPU tests, made by TensorFlow's own converter, and
edits of a converted flatbuffer for what today's converter never writes (an old op version
bumped, a SQUEEZE it turns into a RESHAPE)."""

from __future__ import annotations

from typing import Callable

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from edgeopt.quiet import captured_output

SHAPE = (1, 8, 8, 3)


def tflite(fn, quant: str = "int8", io=tf.int8, batch: int | None = 1, shape: tuple[int | None, ...] | None = None,
           seed: int = 0) -> bytes:
    """`fn` converted by tf.lite.TFLiteConverter, full int8 with representative data drawn
    from a generator of its own (`seed`), so a model does not depend on what ran before.
    `shape` is the input's shape (default SHAPE with batch `batch`)."""
    shape = tuple(shape) if shape is not None else (batch, *SHAPE[1:])
    spec = tf.TensorSpec(shape, tf.float32)
    function = tf.function(fn, input_signature=[spec]).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    if quant == "int8":
        rng = np.random.default_rng(seed)
        static = tuple(1 if d is None else d for d in shape)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(-1, 1, static).astype(np.float32)] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io
    with captured_output():
        return converter.convert()


def rewrite(data: bytes, edit: Callable[[schema.ModelT], None]) -> bytes:
    """`data` unpacked with the TFLite schema, changed in place by `edit`, packed again."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def opcode_index(model: schema.ModelT, builtin: int, version: int = 1) -> int:
    """The index of `builtin`'s operator code in `model`, added when missing."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def set_version(data: bytes, opcode: str, version: int) -> bytes:
    """`data` with `opcode`'s operator code at `version` (what a newer converter writes)."""
    builtin = getattr(schema.BuiltinOperator, opcode)

    def edit(model):
        code = next(c for c in model.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin)
        code.version = version

    return rewrite(data, edit)


def run_once(data: bytes, x: np.ndarray) -> np.ndarray:
    """The output of a single-input, single-output .tflite on `x`, in LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
