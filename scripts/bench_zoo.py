"""`make bench`, the zoo: every net of zoo_models.py through `edgeopt build` for each target,
as a user runs it (the CLI with --json, one child process per build, so a crash, a
traceback or a runaway build is seen as the user sees it), and onnx2tf's float32
conversion of the same ONNX beside it when its side venv exists.

Per build: exit code, first error line, seconds, peak RSS of the child, SQNR against the
source model, TRANSPOSE ops, Edge TPU ops mapped / total and the first op left on the CPU.
The onnx float32 build is the reference: onnxruntime's own SQNR against the source, and
the source's SQNR against itself under float32 rounding noise on its inputs, say how
well-conditioned a random-weight net is (a float build is verified at the lowest of those
and 60 dB).

    python scripts/bench_zoo.py --out bench-results/zoo.json [--models vit-tiny,resnet18]
        [--only 'onnx2tf float32'] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_onnx2tf import onnx2tf_float32
from zoo_models import ZOO

TARGETS = (("onnx", "float32"), ("tflite", "float32"), ("tflite", "int8"), ("coral", "int8"), ("onnx", "int8"))
SCORED = TARGETS[1:]
ONNX2TF = "onnx2tf float32"
CALIBRATION, EVALUATION = 96, 16
TIMEOUT_S = 900
GOALS = {"tflite float32": 0.90, "tflite int8": 0.90, "coral int8": 0.85}
FLOAT_SQNR_DB = 60.0


def run_child(command: list[str], timeout: float) -> tuple[int, str, str, float, float]:
    """(exit code, stdout, last stderr line, seconds, peak RSS in MB) of one child process; -9 on
    timeout. The RSS is the kernel's, which counts what the child inherited at fork: a fallback
    only (build_row reads the build's own per-stage peaks)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        said = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    return (os.waitstatus_to_exitcode(status), text, said[-1] if said else "", time.perf_counter() - start,
            usage.ru_maxrss / 1024)


def _edgetpu(bundle: Path) -> dict:
    analysis = json.loads((bundle / "edgetpu_analysis.json").read_text())
    first = next((op for op in analysis["ops"] if op["status"] != "Mapped to Edge TPU"), None)
    return {"edgetpu_ops": analysis["summary"]["edgetpu_ops"], "ops": len(analysis["ops"]),
            "first_cpu_op": f"{first['op']} #{first['index']}: {first['reason']}" if first else None}


def build_row(model: Path, calib: Path, evaluation: Path, target: str, quant: str, out: Path) -> dict:
    command = [sys.executable, "-m", "edgeopt", "build", str(model), "--target", target, "--quant", quant,
               "--calib", str(calib), "--eval", str(evaluation), "--out", str(out), "--json"]
    if model.suffix == ".keras":  # keras.applications leave the batch (MobileNetV3: the size too) open
        (sample,) = np.load(calib).values()
        command += ["--input-shape", ",".join(map(str, (1, *sample.shape[1:])))]
    code, text, said, seconds, rss = run_child(command, TIMEOUT_S)
    row = {"exit": code, "seconds": round(seconds, 1), "peak_rss_mb": round(rss)}
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        row["error"] = "timeout" if code == -9 else f"no JSON report (exit {code}): {said[-300:]}"
        return row
    peaks = [max(stage["peak_rss_mb"], stage.get("child_peak_rss_mb") or 0) for stage in report.get("stages", [])]
    row["peak_rss_mb"] = round(max(peaks)) if peaks else row["peak_rss_mb"]
    if not report["ok"]:
        row["error"] = report["error"]["message"].splitlines()[0][:300]
        return row
    manifest = report["manifest"]
    row.update(sqnr_db=manifest["fidelity"]["sqnr_db"], top1=manifest["fidelity"]["top1_agreement"],
               bytes=manifest["artefact"]["bytes"], transposes=manifest["artefact"].get("ops", {}).get("TRANSPOSE", 0))
    if target == "coral":
        row.update(_edgetpu(Path(report["bundle"])))
    if target == "onnx" and quant == "float32":  # kept aside: the onnx int8 build reuses the bundle's name
        reference = out.parent / "reference.onnx"
        shutil.copy(Path(report["bundle"]) / "model.onnx", reference)
        row["onnx_file"] = str(reference)
    return row


def prepare(entry, work: Path) -> dict:
    """The net's files and conditioning, made in a child process (zoo_models.py's main)."""
    command = [sys.executable, str(Path(__file__).with_name("zoo_models.py")), entry.name, str(work),
               str(CALIBRATION), str(EVALUATION)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{entry.name}: the zoo could not make the model: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_model(entry, work: Path, only: set[str] | None = None) -> dict:
    """Every build of one net (or those in `only`; onnx2tf needs the onnx float32 build's file)."""
    made = prepare(entry, work / entry.name)
    model, calib, evaluation = Path(made["model"]), Path(made["calib"]), Path(made["eval"])
    rows = {}
    for target, quant in TARGETS:
        key = f"{target} {quant}"
        if only and key not in only and not (key == "onnx float32" and ONNX2TF in only):
            continue
        print(f"  {entry.name}: {key} ...", end="", flush=True)
        rows[key] = build_row(model, calib, evaluation, target, quant, work / entry.name / "dist")
        print(f" exit {rows[key]['exit']} in {rows[key]['seconds']} s", rows[key].get("error", ""), flush=True)
    reference = rows.get("onnx float32", {})
    if "onnx_file" in reference and (not only or ONNX2TF in only):
        data = dict(np.load(evaluation))
        try:
            rows[ONNX2TF] = onnx2tf_float32(Path(reference["onnx_file"]), data, work / entry.name / "onnx2tf")
        except Exception as exc:  # the harness, not onnx2tf: keep the row, say what broke
            error = f"harness: {type(exc).__name__}: {exc}"[:300]
            rows[ONNX2TF] = {"exit": -1, "seconds": 0.0, "error": error}
    return {"family": entry.family, "source": entry.source, "convnet": entry.convnet,
            "conditioning_db": made["conditioning_db"], "builds": rows}


def verified(row: dict | None, model: dict) -> bool:
    """Built, and in float as close to the source as onnxruntime is, or as the source is to
    itself under float32 rounding of its inputs (conditioning_db), or 60 dB."""
    if not row or row.get("exit") != 0 or row.get("runs") is False:
        return False
    if row.get("sqnr_db") is None:  # exact
        return True
    reference = model["builds"].get("onnx float32", {}).get("sqnr_db") or FLOAT_SQNR_DB
    floor = min(FLOAT_SQNR_DB, reference, model.get("conditioning_db") or FLOAT_SQNR_DB) - 1.0
    return row["sqnr_db"] >= floor


def _score(rows: list[tuple[dict | None, dict]], float_build: bool) -> int:
    return sum(verified(r, m) if float_build else bool(r and r["exit"] == 0) for r, m in rows)


def scores(models: dict) -> dict:
    """Per build: verified / tried. onnx2tf's also gives our tflite float32 score on the same
    nets, so that a partial onnx2tf run still compares like with like."""
    found = {}
    for key in [f"{t} {q}" for t, q in SCORED] + [ONNX2TF]:
        rows = [(m["builds"][key], m) for m in models.values() if m["builds"].get(key)]
        if not rows:  # onnx2tf without its side venv
            continue
        ok = _score(rows, "float32" in key)
        tracebacks = sum(1 for r, _ in rows if r.get("exit") == 1)
        found[key] = {"verified": ok, "tried": len(rows), "share": round(ok / len(rows), 3), "exit_1": tracebacks,
                      "goal": GOALS.get(key)}
        if key == ONNX2TF:
            found[key]["tflite_float32_on_these_nets"] = _score([(m["builds"].get("tflite float32"), m)
                                                                for _, m in rows], True)
    return found


def markdown(models: dict, summary: dict) -> str:
    lines = ["| model | family | " + " | ".join(f"{t} {q}" for t, q in TARGETS) + " | onnx2tf float32 |",
             "|---|---|" + "---|" * (len(TARGETS) + 1)]
    for name, m in models.items():
        cells = []
        for key in [f"{t} {q}" for t, q in TARGETS] + [ONNX2TF]:
            r = m["builds"].get(key)
            if not r:
                cells.append("—")
            elif r["exit"] != 0 or r.get("runs") is False:
                cells.append(f"exit {r['exit']}: {r.get('error', '')[:80]}")
            else:
                sqnr = "exact" if r.get("sqnr_db") is None else f"{r['sqnr_db']:.0f} dB"
                extra = f", TPU {r['edgetpu_ops']}/{r['ops']}" if "edgetpu_ops" in r else ""
                rss = f", {r['peak_rss_mb']} MB" if "peak_rss_mb" in r else ""
                cells.append(f"{sqnr}, {r.get('transposes', 0)} T, {r['seconds']:.0f} s{rss}{extra}")
        conditioning = m.get("conditioning_db")
        family = m["family"]
        if conditioning is not None and conditioning < FLOAT_SQNR_DB:
            family += f" (source moves to {conditioning:.0f} dB)"
        lines.append(f"| {name} | {family} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {key}: {s['verified']}/{s['tried']} ({s['share']:.0%})" +
              (f", goal {s['goal']:.0%}" if s["goal"] else "") +
              (f"; tflite float32 on the same nets: {s['tflite_float32_on_these_nets']}/{s['tried']}"
               if key == ONNX2TF else "") for key, s in summary.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/zoo.json"))
    parser.add_argument("--models", help="comma-separated subset of the zoo")
    parser.add_argument("--work", type=Path, help="keep models and bundles here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the rows already in --out that this run does not measure")
    parser.add_argument("--only", help="comma-separated builds to run, e.g. 'onnx2tf float32' or 'coral int8'")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    chosen = [e for e in ZOO if not args.models or e.name in args.models.split(",")]
    models = json.loads(args.out.read_text())["models"] if args.keep and args.out.exists() else {}
    with tempfile.TemporaryDirectory() as temp:
        work = args.work or Path(temp)
        for entry in chosen:
            print(f"{entry.name} ({entry.family}, {entry.source})", flush=True)
            measured = bench_model(entry, work, only)
            kept = models.get(entry.name, {}).get("builds", {})
            models[entry.name] = {**measured, "builds": {**kept, **measured["builds"]}}
            models = {e.name: models[e.name] for e in ZOO if e.name in models}  # zoo order, kept rows too
            write(args.out, models)  # a long run leaves what it has measured so far
    print(markdown(models, scores(models)))


def write(out: Path, models: dict) -> None:
    summary = scores(models)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scores": summary, "models": models}, indent=2, default=float) + "\n")
    out.with_suffix(".md").write_text(markdown(models, summary))


if __name__ == "__main__":
    main()
