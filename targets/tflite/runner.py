"""Run this bundle's .tflite on its golden inputs: `python3 runner.py [--runs N] [--threads T] [--json]`.

Needs numpy and ai-edge-litert (pip install ai-edge-litert numpy) or tflite-runtime.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgeopt_runner import main  # noqa: E402
from litert_model import interpreter_class, load  # noqa: E402


def load_model(bundle, manifest, threads):
    return load(os.path.join(bundle, manifest["artefact"]["file"]), manifest["inputs"], manifest["outputs"], threads)


if __name__ == "__main__":
    sys.exit(main(load_model, interpreter_class()[1]))
