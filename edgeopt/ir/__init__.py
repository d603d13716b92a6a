"""The IR: an ONNX model held in memory with onnx_ir, shared by every stage.

Frontends produce it, passes rewrite it, backends start from it and analyses read it.
"""

from edgeopt.ir.model import (
    TensorSpec,
    from_proto,
    infer_shapes,
    input_specs,
    load,
    output_specs,
    ort_session,
    save,
    to_bytes,
    unshare_initializers,
)

__all__ = [
    "TensorSpec",
    "from_proto",
    "infer_shapes",
    "input_specs",
    "load",
    "output_specs",
    "ort_session",
    "save",
    "to_bytes",
    "unshare_initializers",
]
