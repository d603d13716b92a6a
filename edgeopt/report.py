"""Human-readable tables for the CLI (rich); `--json` prints the `to_json` forms instead."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from edgeopt.ir.analysis import Analysis
from edgeopt.units import format_bytes

TOP_NODES = 10


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def analysis_tables(analysis: Analysis, title: str) -> Group:
    io = Table(title=f"{title}: inputs and outputs", title_justify="left")
    for column in ("", "name", "dtype", "shape"):
        io.add_column(column)
    for kind, specs in (("input", analysis.inputs), ("output", analysis.outputs)):
        for spec in specs:
            io.add_row(kind, spec.name, spec.dtype, spec.shape_text())

    summary = Table(title=f"{title}: size and compute", title_justify="left", show_header=False)
    summary.add_row("parameters", f"{_count(analysis.params)} ({analysis.params:,})")
    for dtype, size in sorted(analysis.param_bytes.items()):
        summary.add_row(f"weights {dtype}", format_bytes(size))
    summary.add_row("MACs", f"{_count(analysis.macs)} ({analysis.macs:,})")
    summary.add_row("peak activations (arena)", format_bytes(analysis.arena.size))
    summary.add_row("live-tensor lower bound", format_bytes(analysis.arena.live_peak))
    if analysis.arena.unknown:
        summary.add_row("tensors of unknown size", ", ".join(analysis.arena.unknown[:5]))

    ops = Table(title="ops", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in analysis.op_histogram.items():
        ops.add_row(op, str(count))

    heavy = Table(title=f"heaviest nodes (top {TOP_NODES} by MACs)", title_justify="left")
    for column in ("node", "op", "MACs", "share"):
        heavy.add_column(column, justify="right" if column in ("MACs", "share") else "left")
    for node in sorted((n for n in analysis.nodes if n.macs), key=lambda n: -n.macs)[:TOP_NODES]:
        heavy.add_row(node.name, node.op_type, f"{node.macs:,}", f"{node.macs / analysis.macs:.1%}")
    return Group(io, summary, ops, heavy)


def fidelity_table(fidelity: dict) -> Table:
    """The artefact against the original model; after --qat, beside the int8 model as it was
    calibrated, before training."""
    columns = [c for c in (fidelity.get("before_training"), fidelity) if c]
    table = Table(title="fidelity vs the original model", title_justify="left", show_header=len(columns) > 1)
    table.add_column("")
    for title in (["int8 as calibrated", "after training"] if len(columns) > 1 else ["artefact"]):
        table.add_column(title, justify="right" if len(columns) > 1 else "left")
    percent = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
    table.add_row("held-out samples", *(str(c["samples"]) for c in columns))
    table.add_row("top-1 agreement", *(percent(c["top1_agreement"]) for c in columns))
    table.add_row("SQNR", *("exact" if c["sqnr_db"] is None else f"{c['sqnr_db']:.1f} dB" for c in columns))
    table.add_row("max abs error", *(f"{c['max_abs_error']:.3g}" for c in columns))
    if fidelity["reference_accuracy"] is not None:
        table.add_row("label accuracy (original)", *(percent(c["reference_accuracy"]) for c in columns))
        table.add_row("label accuracy (artefact)", *(percent(c["artefact_accuracy"]) for c in columns))
    return table


def layers_table(layers: list[dict], title: str) -> Table:
    """int8 error per layer (edgeopt.quant.layers): SQNR against float, and the SQNR lost
    against the layer's inputs, where a broken layer shows."""
    table = Table(title=title, title_justify="left")
    for column in ("#", "op", "node", "SQNR", "lost"):
        table.add_column(column, justify="right" if column in ("#", "SQNR", "lost") else "left")
    for row in layers:
        sqnr = "exact" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f} dB"
        lost = "" if row["growth_db"] is None else f"{row['growth_db']:.1f} dB"
        table.add_row("in" if row["index"] < 0 else str(row["index"]), row["op"], row["node"], sqnr, lost)
    return table


def passes_table(reports: list[dict]) -> Table:
    table = Table(title="passes", title_justify="left")
    for column in ("pass", "changes", "params", "MACs"):
        table.add_column(column)
    for r in reports:
        table.add_row(r["name"], str(len(r["changes"])), f"{r['params_before']:,} → {r['params_after']:,}",
                      f"{r['macs_before']:,} → {r['macs_after']:,}")
    return table


def compression_table(rows: list[dict]) -> Table:
    """What each compression step cost and gained, against the original model (the last row:
    the target artefact). Bytes of IR rows are its float ONNX."""
    table = Table(title="compression, step by step (fidelity vs the original model)", title_justify="left")
    for column in ("step", "params", "non-zero", "MACs", "bytes", "gzipped", "latency", "top-1", "SQNR", "accuracy"):
        table.add_column(column, justify="left" if column == "step" else "right")
    percent = lambda v: "" if v is None else f"{v:.1%}"  # noqa: E731
    for row in rows:
        table.add_row(row["step"], _count(row["params"]), _count(row["nonzero_params"]), _count(row["macs"]), format_bytes(row["bytes"]),
                      format_bytes(row["gzip_bytes"]), f"{row['latency_ms']:.2f} ms", percent(row["top1_agreement"]),
                      "exact" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f} dB", percent(row["label_accuracy"]))
    return table


def stages_table(stages: list[dict]) -> Table:
    """Where the build's time and memory went (a converter child's own peak beside the stage's)."""
    table = Table(title="Build stages", title_justify="left")
    for column in ("stage", "seconds", "peak RSS"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in stages:
        peak = f"{stage['peak_rss_mb']:,.0f} MB"
        if stage.get("child_peak_rss_mb"):
            peak += f" (converter {stage['child_peak_rss_mb']:,.0f} MB)"
        table.add_row(stage["stage"], f"{stage['seconds']:.1f}", peak)
    return table


def smoke_table(report: dict) -> Table:
    title = f"smoke test on {report['board']} ({report['runtime']}, {report['machine']})"
    table = Table(title=title, title_justify="left", min_width=len(title))  # narrow columns would wrap the title
    for column in ("output", "max abs error", "atol", "status"):
        table.add_column(column)
    for row in report["outputs"]:
        table.add_row(row["name"], f"{row['max_abs_error']:.3g}", f"{row['atol']:.3g}", "ok" if row["ok"] else "MISMATCH")
    lat = report["latency_ms"]
    table.caption = (f"latency p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms ({lat['runs']} runs, "
                     f"{report['threads']} thread(s)); peak RSS {report['peak_rss_mib']:.1f} MiB")
    return table


def edgetpu_fix_lines(fix: dict) -> list[str]:
    """What --edgetpu-fix changed, what it cost in float, and what it could not fix."""
    lines = ["Edge TPU fix (--edgetpu-fix):"]
    lines += [f"  changed: {change}" for change in fix["changes"]] or ["  nothing to change"]
    cost = fix["float_cost"]
    if cost:
        sqnr = "exact" if cost["sqnr_db"] is None else f"{cost['sqnr_db']:.1f} dB"
        agreement = "" if cost["top1_agreement"] is None else f", top-1 agreement {cost['top1_agreement']:.2%}"
        lines.append(f"  float cost on {cost['samples']} calibration samples: SQNR {sqnr}, "
                     f"max abs error {cost['max_abs_error']:.3g}{agreement}")
    for stage in fix["stages"]:
        lines.append(f"  predicted, {stage['stage']}: {stage['edgetpu_ops']} of {stage['total_ops']} ops on the "
                     f"Edge TPU, {stage['off_chip_bytes']:,} B of parameters off-chip")
    if fix["not_fixed"]:
        lines.append(f"  not fixed: {fix['not_fixed']}")
    return lines


def transposes_lines(transposes: dict | None) -> list[str]:
    """What the build report says of the TRANSPOSE ops left in a .tflite, and why each stayed."""
    if not transposes or not transposes["count"]:
        return []
    lines = [f"TRANSPOSE ops: {transposes['count']}"]
    lines += [f"  {entry['count']} before {op}: {entry['why']}" for op, entry in transposes["needed_by"].items()]
    return lines


def training_line(training: dict | None) -> str | None:
    """One line on the --qat run: how long it trained and how far the distillation loss fell."""
    if not training:
        return None
    kind = "quantisation-aware training" if training["qat"] else "training"
    return (f"{kind}: {training['steps']} steps of {training['batch']} samples from {training['samples']}"
            f"{' (augmented)' if training['augment'] else ''}, distillation loss "
            f"{training['loss_first']:.4g} -> {training['loss_last']:.4g}")
