"""--edgetpu-fix: rewrite the model so the Edge TPU maps it whole, and measure what that cost.

Each fix answers something the analysis of the converted model found:

| finding | fix | float cost |
|---|---|---|
| an activation with no Edge TPU kernel | a mapped equivalent (passes/edgetpu_activations.py) | none, or GELU's bounded approximation |
| a fully connected layer streamed off-chip | pieces that fill the cache (passes/split_fully_connected.py) | none (float rounding only) |
| an unmappable op with no weights after it (Softmax over channels, LogSoftmax, ...) | cut off with what follows (ir/cut.py); the runner runs it on the CPU in float | none |

An unmappable op with weighted layers after it is not cut (they would all leave the Edge
TPU): the report names it instead. The cost is measured, not assumed: the rewritten float
model against the original, with onnxruntime, on the calibration samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx_ir as ir

from edgeopt.data import Dataset
from edgeopt.edgetpu.analyse import EdgeTpuReport, analyse
from edgeopt.edgetpu.rules import MAPPED
from edgeopt.ir import input_specs, ort_session, to_bytes
from edgeopt.ir.cut import Cut, cut_tail, downstream
from edgeopt.passes import make_pass, run_passes
from edgeopt.tflite.reader import TfliteModel, read_tflite
from edgeopt.verify import measure

WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
COST_SAMPLES = 64
Convert = Callable[[ir.Model], tuple]  # calibrate_and_convert with the build's options: its Converted


@dataclass
class Fixed:
    converted: tuple  # edgeopt.backends.tflite.Converted: what runs on the Edge TPU
    report: EdgeTpuReport
    cut: Cut | None = None
    changes: list[str] = field(default_factory=list)
    not_fixed: str | None = None  # why the Edge TPU part still does not map whole
    float_cost: dict | None = None  # rewritten float model vs the original; None: nothing rewritten
    stages: list[dict] = field(default_factory=list)  # the prediction after each conversion

    def to_json(self) -> dict:
        return {"changes": self.changes, "not_fixed": self.not_fixed, "float_cost": self.float_cost,
                "stages": self.stages}


def _stage(name: str, report: EdgeTpuReport) -> dict:
    return {"stage": name, "edgetpu_ops": report.mapped, "total_ops": len(report.ops),
            "off_chip_bytes": report.off_chip_bytes, "compiles": report.compiles}


def _ort(model: ir.Model | bytes):
    session = ort_session(model)
    return lambda feeds: session.run(None, feeds)


def _float_cost(original: bytes, rewritten: ir.Model, data: Dataset) -> dict:
    batch = input_specs(rewritten)[0].shape[0]
    sample = data.subset(np.arange(min(COST_SAMPLES, data.size)), data.source)
    fidelity = measure(_ort(original), _ort(rewritten), sample, batch)
    return {"samples": fidelity.samples, "top1_agreement": fidelity.top1_agreement,
            "sqnr_db": fidelity.to_json()["sqnr_db"], "max_abs_error": fidelity.max_abs_error}


def _node(converted, tflite: TfliteModel, index: int, model: ir.Model) -> ir.Node | None:
    """The model's node that converted op `index` came from."""
    from edgeopt.tflite.convert import op_node  # imports TensorFlow: only when fixing

    name = op_node(converted[1], tflite, tflite.operators[index])
    return next((n for n in model.graph if n.name == name), None) if name else None


def _try_cut(model: ir.Model, converted, tflite: TfliteModel, report: EdgeTpuReport) -> tuple[Cut | None, str | None]:
    """Cut at the op where the Edge TPU part ends, when nothing weighted comes after it."""
    op = report.ops[report.partition]
    start = _node(converted, tflite, report.partition, model)
    what = f"{op.opcode} ({op.status}: {op.reason})"
    if start is None:
        return None, f"{what} could not be traced to a node of the model"
    weighted = [n.name for n in downstream(model.graph, start) if n.op_type in WEIGHTED_OPS]
    if weighted:
        return None, (f"node '{start.name}' {what}: {len(weighted)} layer(s) with weights follow it "
                      f"(first '{weighted[0]}') and would leave the Edge TPU too; rewrite that op in the source model")
    return cut_tail(model, start), None


def _rewrite(model: ir.Model, name: str, params: dict | None = None) -> tuple[ir.Model, list[str]]:
    model, reports = run_passes(model, [make_pass(name, params)], cleanup=False)
    return model, reports[0].changes


def fix_for_edgetpu(model: ir.Model, convert: Convert, cache_bytes: int, calibration: Dataset) -> Fixed:
    original = to_bytes(model)
    model, changes = _rewrite(model, "edgetpu-activations")
    converted = convert(model)
    tflite = read_tflite(converted[0])
    report = analyse(tflite, cache_bytes)
    stages = [_stage("activations rewritten" if changes else "as given", report)]
    if not report.compiles:
        return Fixed(converted, report, changes=changes, stages=stages)
    streamed = [op.index for op in report.ops if op.off_chip and op.opcode == "FULLY_CONNECTED"]
    layers = [n.name for n in (_node(converted, tflite, i, model) for i in streamed) if n is not None]
    if layers:
        model, split = _rewrite(model, "split-fully-connected", {"nodes": layers, "max_weight_bytes": cache_bytes // 8})
        changes += split
    cost = _float_cost(original, model, calibration) if changes else None  # the cut below changes no value
    cut, not_fixed = _try_cut(model, converted, tflite, report) if report.partition is not None else (None, None)
    if cut is not None:
        first = next(iter(cut.tail.graph))
        changes.append(f"cut off {len(list(cut.tail.graph))} node(s) from '{first.name}' ({first.op_type}) on: "
                       f"they run on the CPU in float, fed {', '.join(cut.crossing)}")
        model = cut.head
    if layers or cut is not None:
        converted = convert(model)
        report = analyse(read_tflite(converted[0]), cache_bytes)
        stages.append(_stage(" and ".join(x for x, done in (("layers split", layers), ("tail cut", cut)) if done), report))
    if not_fixed is None and report.mapped < len(report.ops):
        first = next(op for op in report.ops if op.status != MAPPED)
        not_fixed = f"{first.opcode} ({first.status}: {first.reason}) has no fix in edgeopt"
    return Fixed(converted, report, cut, changes, not_fixed, cost, stages)
