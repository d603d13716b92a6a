"""Measure the resident memory each inference runtime adds, for the device profiles.

The RAM check in a device profile adds a runtime's own footprint (its shared library,
kernels, allocator pools) to the model's weights and activation arena. Those numbers are
measured here rather than guessed: every probe runs in a fresh interpreter, reads VmRSS
from /proc/self/status after importing the runtime, creating a session on a tiny model
and running it once (so lazily set-up kernels and delegates are counted), and subtracts
the VmRSS of a baseline probe: this same script with numpy imported and no runtime.

    python scripts/measure_runtime_overhead.py [--repeats 3]

Prints JSON. The tiny TFLite model is converted with tensorflow (build time only; it is
not imported by the probes). The TFLite probe uses ai_edge_litert when installed, else the
same LiteRT interpreter library that ships inside the tensorflow wheel, loaded on its own
so that importing tensorflow itself does not swamp the measurement.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import math
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

INPUT_SHAPE = (1, 16)
OUTPUT_FEATURES = 4
TFLITE_WRAPPER = "_pywrap_tensorflow_interpreter_wrapper"  # LiteRT's pybind module name
BUILTIN_OP_RESOLVER = 1  # tflite OpResolverType.BUILTIN, the Python Interpreter's default


def vmrss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def tiny_weights() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((INPUT_SHAPE[1], OUTPUT_FEATURES)).astype(np.float32)


def build_onnx(path: Path) -> None:
    """Dense + ReLU: enough to load the runtime's CPU kernels, too small to weigh anything."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(INPUT_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [INPUT_SHAPE[0], OUTPUT_FEATURES])],
        initializer=[numpy_helper.from_array(tiny_weights(), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime of the last years
    onnx.save(model, path)


def build_tflite(path: Path) -> None:
    import tensorflow as tf

    weights = tf.constant(tiny_weights())

    @tf.function(input_signature=[tf.TensorSpec(INPUT_SHAPE, tf.float32)])
    def dense(x):
        return tf.nn.relu(tf.matmul(x, weights))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([dense.get_concrete_function()], dense)
    path.write_bytes(converter.convert())


def run_onnx(model: Path) -> str:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones(INPUT_SHAPE, np.float32)})
    return f"onnxruntime {onnxruntime.__version__}"


def run_tflite(model: Path) -> str:
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(model))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ones(INPUT_SHAPE, np.float32))
        interpreter.invoke()
        return f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"
    wrapper = load_litert_from_tensorflow()
    interpreter = wrapper.CreateWrapperFromBuffer(
        model.read_bytes(), BUILTIN_OP_RESOLVER, [], [], False, False, 1, False)
    interpreter.AllocateTensors()
    interpreter.SetTensor(interpreter.InputIndices()[0], np.ones(INPUT_SHAPE, np.float32))
    interpreter.Invoke()
    return f"LiteRT interpreter from tensorflow {importlib.metadata.version('tensorflow')} (ai-edge-litert not installed)"


def load_litert_from_tensorflow():
    """The interpreter extension in tensorflow/lite/python depends only on its own
    libpywrap_tflite_common.so, not on the TF framework, so it loads without `import tensorflow`."""
    package_dir = Path(importlib.util.find_spec("tensorflow").origin).parent / "lite" / "python"
    library = next(package_dir.glob(f"{TFLITE_WRAPPER}*.so"))
    loader = importlib.machinery.ExtensionFileLoader(TFLITE_WRAPPER, str(library))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(TFLITE_WRAPPER, loader))
    loader.exec_module(module)
    return module


RUNTIMES = {"onnx": (build_onnx, ".onnx", run_onnx), "tflite": (build_tflite, ".tflite", run_tflite)}


def probe(runtime: str | None, model: Path | None) -> dict:
    """One measurement, in this (fresh) process; `runtime=None` is the numpy-only baseline."""
    package = RUNTIMES[runtime][2](model) if runtime else f"numpy {np.__version__}"
    return {"vmrss_kib": vmrss_kib(), "package": package}


def probe_in_subprocess(runtime: str | None, model: Path | None) -> dict:
    command = [sys.executable, __file__, "--probe", runtime or "baseline"]
    if model:
        command += ["--model", str(model)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(repeats: int) -> dict:
    """The largest of `repeats` fresh-process readings: the profiles want an upper bound."""
    baseline_kib = max(probe_in_subprocess(None, None)["vmrss_kib"] for _ in range(repeats))
    report = {"date": datetime.date.today().isoformat(),
              "host": f"{platform.machine()} {platform.system()} {platform.release()}",
              "python": platform.python_version(), "repeats": repeats,
              "baseline_mib": round(baseline_kib / 1024, 1), "runtimes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, suffix, _) in RUNTIMES.items():
            model = Path(tmp) / f"tiny{suffix}"
            build(model)
            readings = [probe_in_subprocess(name, model) for _ in range(repeats)]
            overhead_mib = (max(r["vmrss_kib"] for r in readings) - baseline_kib) / 1024
            report["runtimes"][name] = {"package": readings[0]["package"],
                                        "overhead_mib": round(overhead_mib, 1),
                                        "overhead_mib_rounded_up": math.ceil(overhead_mib)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe", choices=["baseline", *RUNTIMES], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(None if args.probe == "baseline" else args.probe, args.model)))
    else:
        print(json.dumps(measure(args.repeats), indent=2))


if __name__ == "__main__":
    main()
