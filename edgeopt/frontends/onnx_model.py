"""`.onnx` files: read, then normalised like every other frontend's output."""

from __future__ import annotations

import functools
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from edgeopt.errors import ModelError
from edgeopt.frontends.base import FrontendOptions, LoadedModel, normalize, resolve_shapes
from edgeopt.ir import from_proto, input_specs, ort_session


def load_onnx(path: Path, options: FrontendOptions) -> LoadedModel:
    try:
        proto = onnx.load(str(path))
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
            hint="Check that the file is complete (not truncated or a Git LFS pointer) and re-export it.",
        ) from None
    if not proto.graph.node:
        raise ModelError(f"{path}: the ONNX graph has no nodes", hint="Re-export the model; this file is empty or corrupt.")
    specs = resolve_shapes(input_specs(from_proto(proto)), options.input_shapes, path)
    original = proto.SerializeToString()

    session = functools.cache(lambda: ort_session(original))
    return normalize(proto, specs, path, "onnx", lambda feeds: session().run(None, feeds))
