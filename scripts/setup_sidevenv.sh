#!/usr/bin/env bash
# A side venv with onnx2tf, for `make bench`'s comparison only (never an edgeopt dependency:
# onnx2tf pins its own TensorFlow 2.19 and numpy 1.26). onnx2tf 1.29.24 is the last release
# for Python 3.11 (2.x needs 3.12). Then: ONNX2TF_VENV=.sidevenv/onnx2tf make bench
set -euo pipefail
VENV=${1:-.sidevenv/onnx2tf}
python3.11 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet onnx2tf==1.29.24
"$VENV/bin/pip" check
