"""Run this bundle's ONNX model with ONNX Runtime: `python3 runner.py [--runs N] [--json]`.

Needs numpy and onnxruntime on the device (pip install onnxruntime numpy).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnxruntime as ort  # noqa: E402

from edgeopt_runner import main  # noqa: E402


def load_model(bundle, manifest, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(bundle, manifest["artefact"]["file"]), options,
                                   providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


if __name__ == "__main__":
    sys.exit(main(load_model, f"onnxruntime {ort.__version__}"))
