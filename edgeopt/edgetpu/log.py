"""The edgetpu_compiler log, both ways: our analysis rendered in the compiler's own format, and
a real compiler log parsed into the same summary, so the two compare field by field.

Format as printed by compiler 16.0.384591198 (logs quoted in google-coral/edgetpu issues; our
fixtures in tests/edgetpu/logs/ carry their sources): "key: value" lines with sizes such as
"932.50KiB", then an "Operator  Count  Status" table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeopt.edgetpu.analyse import EdgeTpuReport
from edgeopt.edgetpu.rules import AFTER_PARTITION, MAPPED

COMPILER_VERSION = "16.0.384591198"  # the last release; what our rules and version table describe
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
FAILURES = ("Model not quantized", "Model could not be parsed", "Internal compiler error", "Compilation failed",
            "Invalid model")
LINES = {
    "on_chip_bytes": "On-chip memory used for caching model parameters",
    "on_chip_remaining_bytes": "On-chip memory remaining for caching model parameters",
    "off_chip_bytes": "Off-chip memory used for streaming uncached model parameters",
    "subgraphs": "Number of Edge TPU subgraphs",
    "total_ops": "Total number of operations",
    "edgetpu_ops": "Number of operations that will run on Edge TPU",
    "cpu_ops": "Number of operations that will run on CPU",
}
ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


def format_size(n: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if n >= UNITS[unit]:
            return f"{n / UNITS[unit]:.2f}{unit}"
    return f"{n:.2f}B"


def parse_size(text: str) -> int:
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]?i?B)", text.strip()).groups()
    return round(float(number) * UNITS[unit])


@dataclass
class CompilerLog:
    """What a compiler log states; fields it does not state stay None."""

    version: str | None = None
    errors: list[str] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)  # keys of LINES
    rows: list[tuple[str, int, str]] = field(default_factory=list)

    def summary(self) -> dict:
        values = dict(self.values)
        all_mapped = all(status == MAPPED for _, _, status in self.rows)
        if all_mapped and not self.errors and "total_ops" in values:  # fully mapped: no CPU lines printed
            values.setdefault("edgetpu_ops", values["total_ops"])
            values.setdefault("cpu_ops", 0)
        elif self.rows:
            values.setdefault("edgetpu_ops", sum(c for _, c, s in self.rows if s == MAPPED))
            values.setdefault("cpu_ops", sum(c for _, c, s in self.rows if s != MAPPED))
        return {"compiler_version": self.version, "compiles": not self.errors, "errors": self.errors,
                **{key: values.get(key) for key in LINES},
                "operators": [{"op": op, "count": count, "status": status} for op, count, status in self.rows]}


def parse_log(text: str) -> CompilerLog:
    log = CompilerLog()
    in_table = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Edge TPU Compiler version"):
            log.version = log.version or line.split()[-1]
        elif line.startswith("ERROR:"):
            log.errors.append(line[len("ERROR:"):].strip())
        elif any(line.startswith(f) for f in FAILURES):
            log.errors.append(line)
        elif line.startswith("Operator") and "Status" in line:
            in_table = True
        elif in_table and ROW.match(line):
            op, count, status = ROW.match(line).groups()
            log.rows.append((op, int(count), status))
        elif ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            field_name = next((k for k, label in LINES.items() if label == key), None)
            if field_name:
                log.values[field_name] = parse_size(value) if field_name.endswith("bytes") else int(value)
    return log


def summary(report: EdgeTpuReport) -> dict:
    """Our prediction in the same shape as CompilerLog.summary()."""
    facts = {"compiler_version": COMPILER_VERSION, "compiles": report.compiles, "errors": report.errors}
    if not report.compiles:
        return {**facts, **{key: None for key in LINES}, "operators": []}
    return {**facts, "on_chip_bytes": report.on_chip_bytes,
            "on_chip_remaining_bytes": report.cache_bytes - report.on_chip_bytes,
            "off_chip_bytes": report.off_chip_bytes, "subgraphs": 1 if report.mapped else 0,
            "total_ops": len(report.ops), "edgetpu_ops": report.mapped, "cpu_ops": len(report.ops) - report.mapped,
            "operators": [{"op": op, "count": count, "status": status} for op, count, status in report.rows()]}


def analysis_json(report: EdgeTpuReport) -> dict:
    """The summary plus every op's verdict and reason, and where the Edge TPU part ends."""
    return {"summary": summary(report), "partition": report.partition, "ops": [op.to_json() for op in report.ops]}


def render(report: EdgeTpuReport, model_name: str) -> str:
    """Our analysis as edgetpu_compiler would print it, then the reasons it never prints."""
    lines = [f"Edge TPU Compiler version {COMPILER_VERSION} (predicted by edgeopt; the compiler was not run)", ""]
    if not report.compiles:
        lines += [f"ERROR: {e}" for e in report.errors if not e.startswith("edgeopt:")]
        lines += ["", f"Invalid model: {model_name}"] + [e for e in report.errors if e.startswith("edgeopt:")]
        return "\n".join(lines) + "\n"
    facts = summary(report)
    lines += [f"Input model: {model_name}", f"Output model: {model_name.removesuffix('.tflite')}_edgetpu.tflite"]
    lines += [f"{LINES[k]}: {format_size(facts[k])}" for k in ("on_chip_bytes", "on_chip_remaining_bytes",
                                                                 "off_chip_bytes")]
    lines += [f"{LINES[k]}: {facts[k]}" for k in ("subgraphs", "total_ops", "edgetpu_ops", "cpu_ops")]
    lines += ["", f"{'Operator':<30} {'Count':<10} Status", ""]
    lines += [f"{op:<30} {count:<10} {status}" for op, count, status in report.rows()]
    reasons = [op for op in report.ops if op.reason]
    if reasons:
        lines += ["", "Why (edgeopt):"]
        if report.partition is not None:
            cut = report.ops[report.partition]
            lines.append(f"  the Edge TPU subgraph ends at op #{cut.index} {cut.opcode}: every op that depends on it "
                         "runs on the CPU")
        lines += [f"  #{op.index} {op.opcode}: {op.reason}" for op in reasons if op.status != AFTER_PARTITION]
    return "\n".join(lines) + "\n"
