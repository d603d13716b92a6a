"""Predict what edgetpu_compiler 16 makes of a .tflite: whether it compiles at all, which ops
map to the Edge TPU, where the graph is cut, and how many parameter bytes fit the on-chip cache.

The compiler maps one Edge TPU subgraph: once an op that consumed Edge TPU results has to run
on the CPU, every op that depends on it runs on the CPU too ("More than one subgraph is not
supported"), even if it could map. CPU ops ahead of the Edge TPU part (a float-to-int8
QUANTIZE on a float input) do not cut it. Parameters are cached on chip op by op in execution
order while they fit; the rest is streamed from host memory on every inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeopt.edgetpu.rules import AFTER_PARTITION, INT8_TYPES, MAPPED, Op, verdict
from edgeopt.edgetpu.versions import builtin_code, unknown_builtin, unknown_version
from edgeopt.tflite.reader import OperatorInfo, TfliteModel

# Usable cache when no device profile says otherwise: the low end of what compiler logs
# report as used + remaining (6.9-7.9 MiB of the ~8 MiB SRAM, ../shared/reference/edgetpu.md).
DEFAULT_CACHE_BYTES = 7065 * 1024


@dataclass
class OpVerdict:
    index: int
    opcode: str
    status: str
    reason: str = ""
    parameter_bytes: int = 0
    off_chip: bool = False  # its parameters are streamed from host memory

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED

    def to_json(self) -> dict:
        return {"index": self.index, "op": self.opcode, "status": self.status, "reason": self.reason,
                "parameter_bytes": self.parameter_bytes, "off_chip": self.off_chip}


@dataclass
class EdgeTpuReport:
    """Our prediction, shaped like the compiler's log (see log.py for both directions)."""

    ops: list[OpVerdict]
    cache_bytes: int
    errors: list[str] = field(default_factory=list)  # the compile would fail: the compiler's words, then ours
    on_chip_bytes: int = 0
    off_chip_bytes: int = 0
    partition: int | None = None  # index of the CPU op that ends the Edge TPU subgraph

    @property
    def compiles(self) -> bool:
        return not self.errors

    @property
    def mapped(self) -> int:
        return sum(op.mapped for op in self.ops) if self.compiles else 0

    @property
    def parameter_bytes(self) -> int:
        return self.on_chip_bytes + self.off_chip_bytes

    def rows(self) -> list[tuple[str, int, str]]:
        """(op, count, status) in first-seen order, as the compiler's table lists them."""
        counts: dict[tuple[str, str], int] = {}
        for op in self.ops:
            counts[op.opcode, op.status] = counts.get((op.opcode, op.status), 0) + 1
        return [(opcode, count, status) for (opcode, status), count in counts.items()]


def _parse_error(op: OperatorInfo) -> str | None:
    """The compiler's words when its TFLite runtime cannot register this op (versions.py)."""
    if unknown_builtin(op.opcode):
        return (f"Op builtin_code out of range: {builtin_code(op.opcode)}. "
                "Are you using old TFLite binary with newer model?")
    if unknown_version(op.opcode, op.version):
        return f"Didn't find op for builtin opcode '{op.opcode}' version '{op.version}'"
    return None


def _model_errors(model: TfliteModel) -> list[str]:
    errors = []
    for op in model.operators:
        error = _parse_error(op)
        if error:
            return [error, "Model could not be parsed"]
    dynamic = [t for t in model.tensors if any(d < 0 for d in t.shape_signature)]
    if dynamic:
        errors += ["Attempting to use a delegate that only supports static-sized tensors with a graph that has "
                   "dynamic-sized tensors",
                   f"edgeopt: tensor '{dynamic[0].name}' has shape {list(dynamic[0].shape_signature)} (-1 is dynamic); "
                   "export with a fixed batch of 1 and fixed sizes"]
    if not any(t.dtype in INT8_TYPES and t.quantized for t in model.tensors if not t.constant):
        errors += ["Model not quantized", "edgeopt: no int8/uint8 activations; build with --quant int8 and "
                   "calibration data"]
    return errors


def _parameter_bytes(op: Op, counted: set[int]) -> int:
    """Constant bytes this op brings that no earlier op already brought (shared buffers count once)."""
    total = 0
    for t in op.tensors():
        if t.constant and t.index not in counted:
            counted.add(t.index)
            total += t.data_bytes
    return total


def analyse(model: TfliteModel, cache_bytes: int = DEFAULT_CACHE_BYTES) -> EdgeTpuReport:
    report = EdgeTpuReport([], cache_bytes, _model_errors(model))
    on_cpu_after_tpu: set[int] = set()  # tensors made on the CPU from Edge TPU results
    made_on_tpu: set[int] = set()
    counted: set[int] = set()
    for info in model.operators:
        op = Op(model, info)
        status, reason = verdict(op)
        depends_on_cut = any(i in on_cpu_after_tpu for i in info.inputs)
        if status == MAPPED and depends_on_cut:
            status, reason = AFTER_PARTITION, "depends on an op that runs on the CPU after the Edge TPU part"
        if status == MAPPED:
            made_on_tpu.update(info.outputs)
        elif depends_on_cut or any(i in made_on_tpu for i in info.inputs):
            on_cpu_after_tpu.update(info.outputs)
            if report.partition is None:
                report.partition = info.index
        size = _parameter_bytes(op, counted) if status == MAPPED else 0
        report.ops.append(OpVerdict(info.index, info.opcode, status, reason, size))
    if report.compiles:
        for op in report.ops:
            if report.on_chip_bytes + op.parameter_bytes <= cache_bytes:
                report.on_chip_bytes += op.parameter_bytes
            else:
                report.off_chip_bytes += op.parameter_bytes
                op.off_chip = True
    return report
