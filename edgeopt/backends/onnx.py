"""`onnx` target: the portable CPU path through ONNX Runtime.

float32 ships the cleaned IR as is; int8 is onnxruntime's static QDQ quantization
(per-channel int8 weights, int8 activations from min/max calibration), which ORT's
CPU kernels run as integer Conv/MatMul on x86-64 and ARM alike.

Weights use 7 bits (reduce_range): ORT's x86-64 int8 kernels (VPMADDUBSW) saturate with
full 8-bit weights (onnxruntime.ai/docs/performance/model-optimizations/quantization.html,
"When and why do I need to try U8U8?"). Measured on the example digits CNN: 8-bit
weights gave 12.7 dB SQNR and a 6-point accuracy drop on x86-64, 7-bit 36.7 dB and 0.3.
The host verifies what the device runs, so the bundle must be right on both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.errors import CompileError, DataError, UnsupportedOpError
from edgeopt.ir import from_proto, input_specs, ort_session, output_specs, to_bytes, unshare_initializers
from edgeopt.quiet import captured_output

MODEL_FILE = "model.onnx"
FLOAT_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}  # same graph, other CPU / thread count
INT8_SCALES_TOLERANCE = 2  # int8 output: other kernels may round differently by a step or two


def _session(data: bytes):
    try:
        return ort_session(data)
    except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented types
        text = str(exc)
        if "NOT_IMPLEMENTED" in text or "Could not find an implementation" in text:
            raise UnsupportedOpError(f"onnxruntime has no CPU kernel for a node: {text.splitlines()[0]}",
                                     hint="Rewrite the op in the source model, or use a newer opset.") from None
        raise CompileError(f"onnxruntime cannot load the model: {text.splitlines()[0]}") from None


def _calibration_reader(data, batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(data.batches(batch))

        def get_next(self):
            return next(self.feeds, None)

    return Reader()


# elements: small shared parameters are copied, large ones (tied embeddings) stay shared. onnxruntime's
# QDQ quantizer refuses an initializer that several quantized nodes read ("Quantization parameter
# shared mode is not supported for weight yet"): PoolFormer's 25 GroupNorms share one scale and bias.
SHARED_COPY_LIMIT = 1 << 16


def _quantize_int8(model: ir.Model, options: CompileOptions) -> bytes:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if options.calibration is None:
        raise DataError("int8 needs calibration data", hint="Pass --calib data.npz (or --calib random, loudly worse).")
    batch = input_specs(model)[0].shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        unshared = ir.from_proto(ir.to_proto(model))
        unshare_initializers(unshared, SHARED_COPY_LIMIT)
        source.write_bytes(to_bytes(unshared))
        try:
            with captured_output() as log:
                quantize_static(
                    str(source), str(target), _calibration_reader(options.calibration, batch),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
                )
        except Exception as exc:
            raise CompileError(f"onnxruntime quantization failed: {exc}\n{log.tail()}") from None
        return to_bytes(from_proto(onnx.load(str(target))))


def _output_scale(model: ir.Model, name: str) -> float | None:
    """Scale of the DequantizeLinear that produces a graph output, if any."""
    value = next(v for v in model.graph.outputs if v.name == name)
    node = value.producer()
    if node is None or node.op_type != "DequantizeLinear" or node.inputs[1].const_value is None:
        return None
    return float(np.max(node.inputs[1].const_value.numpy()))


class OnnxBackend(Backend):
    name = "onnx"
    quant_modes = ("float32", "int8")
    description = "ONNX Runtime on the device CPU (float32, or int8 QDQ with calibration)"

    def compile(self, model: ir.Model, options: CompileOptions) -> Artefact:
        data = to_bytes(model) if options.quant == "float32" else _quantize_int8(model, options)
        session = _session(data)
        artefact_model = from_proto(onnx.load_from_string(data))
        tolerances = []
        for spec in output_specs(artefact_model):
            scale = _output_scale(artefact_model, spec.name)
            tolerances.append({"atol": INT8_SCALES_TOLERANCE * scale, "rtol": 0.0} if scale else FLOAT_TOLERANCE)
        return Artefact(
            files={MODEL_FILE: data},
            main=MODEL_FILE,
            inputs=[{**s.to_json(), "layout": None, "quantization": None} for s in input_specs(artefact_model)],
            outputs=[{**s.to_json(), "quantization": None} for s in output_specs(artefact_model)],
            run=lambda feeds: session.run(None, feeds),
            model=artefact_model,
            tolerances=tolerances,
            info={"runtime": "onnxruntime", "quant_format": "QDQ" if options.quant == "int8" else None},
        )
