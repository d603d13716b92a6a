"""What every frontend shares: options, the loaded-model record, shape resolution and
the final normalisation into the IR (static input shapes, constants as initializers,
inferred value shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes

from edgeopt.errors import ModelError, UsageError
from edgeopt.ir import TensorSpec, from_proto, infer_shapes

OPSET = 18  # what the exporters, tf2onnx and onnxruntime's quantizer all support

Reference = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class FrontendOptions:
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    trust_pickle: bool = False
    module: str | None = None  # "pkg.mod:factory" for a state_dict


@dataclass
class LoadedModel:
    """The IR plus a way to run the original model, which verification compares against."""

    model: ir.Model
    source: Path
    format: str
    reference: Reference


def parse_input_shapes(texts: list[str] | tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """`NAME=1,3,224,224` (or just `1,3,224,224` for a single-input model, stored under "")."""
    shapes = {}
    for text in texts:
        name, _, dims = text.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if not shape or any(d <= 0 for d in shape):
            raise UsageError(
                f"--input-shape {text!r} is not NAME=D1,D2,... with positive integers",
                hint="Example: --input-shape input=1,3,224,224",
            )
        shapes[name.strip()] = shape
    return shapes


def resolve_shapes(specs: list[TensorSpec], overrides: dict[str, tuple[int, ...]], source: Path) -> list[TensorSpec]:
    """Apply --input-shape to the model's inputs; every dim must end up static."""
    names = [s.name for s in specs]
    if "" in overrides and len(specs) == 1:
        overrides = {names[0]: overrides[""]}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise UsageError(
            f"--input-shape names {', '.join(map(repr, unknown))}, but {source.name} has inputs {', '.join(names)}",
            hint="Use the model's input names: --input-shape NAME=D1,D2,...",
        )
    resolved, missing = [], []
    for spec in specs:
        shape = overrides.get(spec.name)
        if shape is None:
            if not spec.is_static:
                missing.append(spec)
            resolved.append(spec)
            continue
        if spec.shape is not None and len(shape) != len(spec.shape):
            raise UsageError(
                f"--input-shape gives {spec.name} rank {len(shape)}, but {source.name} declares {spec.shape_text()}"
            )
        for i, (want, have) in enumerate(zip(shape, spec.shape or ())):
            if isinstance(have, int) and have != want:
                raise UsageError(f"--input-shape sets dim {i} of {spec.name} to {want}, but the model fixes it to {have}")
        resolved.append(TensorSpec(spec.name, spec.dtype, shape))
    if missing:
        listed = "; ".join(
            f"{s.name} {s.shape_text()} (dynamic dims {', '.join(map(str, s.dynamic_dims))})"
            if s.shape is not None else f"{s.name} (shape not recorded in the file)"
            for s in missing
        )
        example = " ".join(f"--input-shape {s.name}={_example_dims(s)}" for s in missing)
        raise UsageError(
            f"{source.name} has inputs without a static shape: {listed}. Edge targets need static shapes.",
            hint=f"Give them, e.g. {example}",
        )
    return resolved


def _example_dims(spec: TensorSpec) -> str:
    if spec.shape is None:
        return "1,C,H,W"
    return ",".join(str(d) if isinstance(d, int) else "1" for d in spec.shape)


def normalize(proto: onnx.ModelProto, specs: list[TensorSpec], source: Path, fmt: str, reference: Reference) -> LoadedModel:
    """ONNX proto from any frontend -> IR with static inputs and inferred shapes."""
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises ValidationError and friends
        raise ModelError(f"{source}: the ONNX graph is invalid: {exc}") from None
    model = from_proto(proto)
    by_name = {s.name: s for s in specs}
    for value in model.graph.inputs:
        spec = by_name.get(value.name)
        if spec is not None and spec.is_static:
            value.shape = ir.Shape(spec.shape)
    common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0).call(model)
    model = infer_shapes(model)
    return LoadedModel(model, source, fmt, reference)


def example_inputs(specs: list[TensorSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the resolved shapes, for tracing exporters."""
    rng = np.random.default_rng(seed)
    return {s.name: rng.standard_normal(s.shape).astype(s.dtype if s.dtype != "unknown" else "float32") for s in specs}
