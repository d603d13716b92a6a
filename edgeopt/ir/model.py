"""Conversions between the in-memory IR, ONNX protos and files, and tensor specs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes

Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of a graph input or output."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None  # None: rank not recorded (TorchScript, nn.Module)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def dynamic_dims(self) -> list[int]:
        return [i for i, d in enumerate(self.shape or ()) if not isinstance(d, int)]

    def shape_text(self) -> str:
        if self.shape is None:
            return "[unknown]"
        return "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


def _dims(shape: ir.Shape | None) -> tuple[Dim, ...] | None:
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else d.value for d in shape)


def _spec(value: ir.Value) -> TensorSpec:
    dtype = value.dtype.numpy().name if value.dtype is not None else "unknown"
    return TensorSpec(value.name, dtype, _dims(value.shape))


def input_specs(model: ir.Model) -> list[TensorSpec]:
    return [_spec(v) for v in model.graph.inputs]


def output_specs(model: ir.Model) -> list[TensorSpec]:
    return [_spec(v) for v in model.graph.outputs]


def from_proto(proto: onnx.ModelProto) -> ir.Model:
    return ir.from_proto(proto)


def to_bytes(model: ir.Model) -> bytes:
    """Serialize deterministically (same model, same bytes) so bundles reproduce."""
    return ir.to_proto(model).SerializeToString(deterministic=True)


def save(model: ir.Model, path: Path) -> None:
    Path(path).write_bytes(to_bytes(model))


def load(path: Path) -> ir.Model:
    return ir.from_proto(onnx.load(str(path)))


def infer_shapes(model: ir.Model) -> ir.Model:
    """Fill in value shapes and dtypes with ONNX shape inference (with data propagation)."""
    return common_passes.ShapeInferencePass(strict_mode=False).call(model).model


def unshare_initializers(model: ir.Model, limit: int | None = None) -> int:
    """Every node reading a float initializer that other nodes read too gets its own copy (of
    at most `limit` elements; None: any size). Returns the copies made.

    Exporters deduplicate equal constants (all-zero biases, one GroupNorm scale for every
    block); a quantizer or a trainer must be free to give each its own value."""
    graph, copies = model.graph, 0
    for value in list(graph.initializers.values()):
        tensor = value.const_value
        uses = list(value.uses())
        if (len(uses) < 2 or tensor is None or value.is_graph_input() or value.is_graph_output()
                or not np.issubdtype(tensor.dtype.numpy(), np.floating) or (limit is not None and tensor.size > limit)):
            continue
        array = tensor.numpy()
        for n, (node, index) in enumerate(uses[1:], 1):
            name = f"{value.name}__copy{n}"
            while name in graph.initializers:
                name += "_"
            copy = ir.val(name, const_value=ir.tensor(array.copy(), name=name))
            graph.register_initializer(copy)
            node.replace_input_with(index, copy)
            copies += 1
    return copies


def ort_session(model: ir.Model | bytes, threads: int = 1):
    """An onnxruntime CPU session; single-threaded by default so results are deterministic."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    data = model if isinstance(model, bytes) else to_bytes(model)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
