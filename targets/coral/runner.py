"""Run this bundle on a Coral Edge TPU: `python3 runner.py [--runs N] [--json]`.

Uses the compiled model (model_edgetpu.tflite) with the Edge TPU delegate, found through
pycoral, else tflite_runtime or ai_edge_litert with libedgetpu. Without an Edge TPU (or
without a compiled model in the bundle) it runs model.tflite on the CPU and says so: same
results, CPU speed. A bundle built with --edgetpu-fix may hold cpu_tail.tflite, the float
ops cut off the end of the model: they run on the CPU after the Edge TPU part (cpu_tail.py).
Needs numpy and tflite-runtime (Coral's Debian packages) or ai-edge-litert.
"""

import importlib
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpu_tail import chain  # noqa: E402
from edgeopt_runner import main  # noqa: E402
from litert_model import interpreter_class, load  # noqa: E402

# https://coral.ai/docs/edgetpu/tflite-python/#load-tensorflow-lite-and-run-an-inference
LIBEDGETPU = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
RUNTIMES = (("pycoral", "pycoral.utils.edgetpu", "tflite_runtime.interpreter"),
            ("tflite-runtime", "tflite_runtime.interpreter", "tflite_runtime.interpreter"),
            ("ai-edge-litert", "ai_edge_litert.interpreter", "ai_edge_litert.interpreter"))


def _delegate(loader_module):
    if loader_module.__name__ == "pycoral.utils.edgetpu":
        return loader_module.load_edgetpu_delegate()
    return loader_module.load_delegate(LIBEDGETPU.get(platform.system(), "libedgetpu.so.1"))


def edgetpu_runtime():
    """(name, Interpreter class, delegate) for the first runtime that reaches an Edge TPU, else None."""
    failures = []
    for name, loader, interpreter_module in RUNTIMES:
        try:
            delegate = _delegate(importlib.import_module(loader))
            return name, importlib.import_module(interpreter_module).Interpreter, delegate
        except ImportError:
            continue
        except (ValueError, OSError, RuntimeError) as exc:  # library present, device absent or unusable
            failures.append(f"{name}: {exc}")
    if failures:
        print("edgeopt: no usable Edge TPU (" + "; ".join(failures) + ")", file=sys.stderr)
    return None


def choose(manifest):
    """(model file, runtime name, Interpreter class or None, delegates)."""
    compiled = (manifest["artefact"].get("edgetpu") or {}).get("compiled") or []
    found = edgetpu_runtime() if compiled else None
    if found is None:
        why = "the bundle has no compiled model (finish with its compile command)" if not compiled else "see above"
        print(f"edgeopt: WARNING running model.tflite on the CPU, not the Edge TPU: {why}", file=sys.stderr)
        return manifest["artefact"]["file"], interpreter_class()[1] + " (CPU)", None, None
    name, interpreter_type, delegate = found
    return compiled[0], name + " + Edge TPU", interpreter_type, [delegate]


def load_model(bundle, manifest, threads):
    model_file, runtime, interpreter_type, delegates = choose(manifest)
    tail = manifest["artefact"]["edgetpu"].get("cpu_tail")
    head_outputs = tail["head_outputs"] if tail else manifest["outputs"]
    run = load(os.path.join(bundle, model_file), manifest["inputs"], head_outputs, threads, delegates,
               interpreter_type)
    if tail:
        run_tail = load(os.path.join(bundle, tail["file"]), tail["inputs"], tail["outputs"], threads)
        return chain(run, run_tail, tail, manifest["outputs"]), runtime + " + CPU tail"
    return run, runtime


if __name__ == "__main__":
    sys.exit(main(load_model, interpreter_class()[1]))
