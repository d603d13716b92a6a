"""Backends by target name; modules load lazily (each pulls in its own toolchain)."""

from __future__ import annotations

import importlib

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.errors import UsageError

TARGETS = {
    "onnx": "edgeopt.backends.onnx:OnnxBackend",
    "tflite": "edgeopt.backends.tflite:TfliteBackend",
    "coral": "edgeopt.backends.coral:CoralBackend",
    "arm-cpu": "edgeopt.backends.arm_cpu:ArmCpuBackend",
}


def get_backend(target: str) -> Backend:
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}", hint=f"Targets: {', '.join(TARGETS)}")
    module, cls = TARGETS[target].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["Artefact", "Backend", "CompileOptions", "TARGETS", "get_backend"]
