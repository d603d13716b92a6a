"""Device-side half shared by every target's runner: read the bundle's manifest, run the
model on the golden inputs, compare with the expected outputs, time it, report.

Depends on numpy and the standard library only; ships inside every bundle.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np


def load_golden(bundle, manifest):
    golden = manifest["golden"]
    inputs = [np.load(os.path.join(bundle, p)) for p in golden["inputs"]]
    expected = [np.load(os.path.join(bundle, p)) for p in golden["outputs"]]
    return inputs, expected


def batches(inputs, names, batch):
    for start in range(0, len(inputs[0]) - batch + 1, batch):
        yield {n: x[start:start + batch] for n, x in zip(names, inputs)}


def compare(actual, expected, tolerances, names):
    rows = []
    for name, got, want, tol in zip(names, actual, expected, tolerances):
        if got.shape != want.shape:
            rows.append({"name": name, "max_abs_error": float("inf"), "atol": tol["atol"], "rtol": tol["rtol"],
                         "ok": False, "shape": [list(got.shape), list(want.shape)]})
            continue
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        limit = tol["atol"] + tol["rtol"] * np.abs(want.astype(np.float64))
        rows.append({"name": name, "max_abs_error": float(err.max()), "atol": tol["atol"], "rtol": tol["rtol"],
                     "ok": bool(np.all(err <= limit))})
    return rows


def percentile_ms(samples, q):
    return float(np.percentile(np.array(samples) * 1000.0, q))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main(load_model, runtime_name):
    """`load_model(bundle_dir, manifest, threads)` returns `run(feeds) -> list of arrays`, or
    (run, runtime name) when the runtime is only known once loaded (coral: Edge TPU or CPU)."""
    parser = argparse.ArgumentParser(description="Run an edgeopt bundle on its golden inputs and time it.")
    parser.add_argument("--bundle", default=os.path.dirname(os.path.abspath(sys.argv[0])))
    parser.add_argument("--runs", type=int, default=50, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON report")
    parser.add_argument("--save-outputs", metavar="DIR", help="write the outputs on the golden inputs there, as .npy")
    args = parser.parse_args()

    with open(os.path.join(args.bundle, "manifest.json")) as f:
        manifest = json.load(f)
    in_names = [s["name"] for s in manifest["inputs"]]
    out_names = [s["name"] for s in manifest["outputs"]]
    batch = manifest["inputs"][0]["shape"][0]
    inputs, expected = load_golden(args.bundle, manifest)
    loaded = load_model(args.bundle, manifest, args.threads)
    run, runtime_name = loaded if isinstance(loaded, tuple) else (loaded, runtime_name)

    outputs = [run(feeds) for feeds in batches(inputs, in_names, batch)]
    actual = [np.concatenate(parts) for parts in zip(*outputs)]
    rows = compare(actual, expected, manifest["golden"]["tolerances"], out_names)
    if args.save_outputs:
        for path, array in zip(manifest["golden"]["outputs"], actual):
            np.save(os.path.join(args.save_outputs, os.path.basename(path)), array)

    first = next(batches(inputs, in_names, batch))
    run(first)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run(first)
        times.append(time.perf_counter() - start)
    report = {
        "ok": all(r["ok"] for r in rows),
        "outputs": rows,
        "golden_samples": len(inputs[0]),
        "latency_ms": {"p50": percentile_ms(times, 50), "p90": percentile_ms(times, 90), "runs": args.runs},
        "threads": args.threads,
        "peak_rss_mib": peak_rss_mib(),
        "runtime": runtime_name,
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for r in rows:
            print(f"{r['name']}: max abs error {r['max_abs_error']:.3g} (atol {r['atol']:.3g}) {'ok' if r['ok'] else 'MISMATCH'}")
        lat = report["latency_ms"]
        print(f"latency p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms over {args.runs} runs, "
              f"{args.threads} thread(s); peak RSS {report['peak_rss_mib']:.1f} MiB ({runtime_name}, {report['machine']})")
    return 0 if report["ok"] else 1
