"""Run a .tflite model with float inputs and outputs, whatever its I/O types.

Integer I/O is quantized and dequantized here with the scale and zero point the bundle's
manifest records, so callers (the runner, and edgeopt's own verification on the host)
always exchange float arrays in the model's layout. Needs numpy and one of ai-edge-litert
or tflite-runtime; imports nothing from edgeopt, because it ships inside bundles.
"""

import numpy as np


def interpreter_class():
    """LiteRT's interpreter, or the older tflite_runtime package (e.g. Coral's Debian images)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"


def quantize(x, quantization, dtype):
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / quantization["scale"] + quantization["zero_point"])
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, quantization):
    return ((q.astype(np.float64) - quantization["zero_point"]) * quantization["scale"]).astype(np.float32)


def open_model(model, threads=1, delegates=None, interpreter_type=None):
    """The interpreter as a device makes it: `delegates` (the Edge TPU) if given, and the
    runtime's default delegates on, so XNNPACK takes the CPU part, as on phones and boards.
    Tensors are allocated here: a delegate that refuses the model fails at load, not at the
    first inference. `model`: a path or the file's bytes; `interpreter_type`: the
    Interpreter class that matches `delegates` (default: interpreter_class())."""
    interpreter_type = interpreter_type or interpreter_class()[0]
    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    interpreter = interpreter_type(**source, num_threads=threads, experimental_delegates=delegates)
    interpreter.allocate_tensors()
    return interpreter


def load(model, inputs, outputs, threads=1, delegates=None, interpreter_type=None):
    """`inputs`/`outputs`: the manifest's I/O specs; the rest as for open_model.

    Returns run(feeds) taking {name: float array} and returning float arrays in order.
    """
    runner = open_model(model, threads, delegates, interpreter_type).get_signature_runner()

    def run(feeds):
        args = {}
        for spec in inputs:
            x = np.asarray(feeds[spec["name"]])
            q = spec.get("quantization")
            args[spec["device_name"]] = quantize(x, q, np.dtype(spec["dtype"])) if q else x.astype(spec["dtype"])
        results = runner(**args)
        out = []
        for spec in outputs:
            y = results[spec["device_name"]]
            q = spec.get("quantization")
            out.append(dequantize(y, q) if q else np.asarray(y))
        return out

    return run
