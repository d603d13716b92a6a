"""`make bench`, the arm-cpu target (issue 14), in one run side by side. Writes JSON.

- match: the digits CNN, MobileNetV2-224 (random weights) and EfficientNet-Lite0 (trained) built
  for the rpi4 profile; the aarch64 runner runs each bundle under qemu-aarch64 on its golden
  inputs and writes its outputs, which are compared with the float PyTorch model's
  (max abs error over the output range; target <= 1e-4).
- speed, MobileNetV2-224 and Lite0, on this host, all on one thread: TVM untuned, TVM after
  `--tune-time` (30 minutes by default), onnxruntime float and LiteRT-XNNPACK float, measured
  in turns so that machine noise hits them alike (target: tuned <= 1.5x onnxruntime).
- reuse: the same build again finds the tuning in the cache; its time over the tuning build's
  (target <= 0.2).
- the runtime + runner bytes in the bundle (target <= 10 MB).

The tuning cache starts empty (a temporary EDGEOPT_CACHE beside the installed runtime).

    python scripts/bench_arm.py --out bench-results/arm.json [--tune-time 1800] [--only digits]
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", "1")  # before TVM loads: the VM's and the tuning runner's thread pools

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_imagenet import litert_latency_ms, random_mobilenet, trained_lite0
from edgeopt.boards.qemu import QemuBoard
from edgeopt.build import BuildRequest, build
from edgeopt.compress.stage import host_latency_ms
from edgeopt.progress import Progress
from edgeopt.tvm.runtime import cache_root

EXAMPLES = Path("examples")
TUNE_SECONDS = 1800  # issue 14: at most 30 minutes of tuning on 2 cores
MATCH_LIMIT = 1e-4  # of the float model's output range
SPEED_LIMIT = 1.5  # tuned TVM over onnxruntime float
REUSE_LIMIT = 0.2  # second build over the tuning build
RUNTIME_LIMIT = 10 * 1024 * 1024
LATENCY_RUNS = 50
EVAL_CROPS = 16  # the build's golden samples come from these


def float_outputs(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(image[None])).numpy() for image in images])


def timed_build(source: Path, work: Path, name: str, **fields):
    start = time.perf_counter()
    result = build(BuildRequest(source, out=work / name, **fields), Progress(quiet="tune_seconds" not in fields))
    return result, round(time.perf_counter() - start, 1)


def match_under_qemu(result, model: torch.nn.Module, work: Path) -> dict:
    """The aarch64 runner's outputs on the golden inputs against the float model's."""
    directory = result.bundle.directory
    saved = work / "board-outputs"
    saved.mkdir(exist_ok=True)
    start = time.perf_counter()
    done = QemuBoard().run(directory, "runner", ["--json", "--runs", "1", "--save-outputs", str(saved)])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    board = np.load(saved / "output_0.npy")
    reference = float_outputs(model, np.load(directory / "golden" / "input_0.npy"))
    error = float(np.abs(board - reference).max()) / float(reference.max() - reference.min())
    return {"samples": len(board), "max_abs_error_over_range": error, "within_limit": error <= MATCH_LIMIT,
            "runner_ok_against_golden": report["ok"], "qemu_seconds": round(time.perf_counter() - start, 1),
            "runtime_bytes": result.manifest["artefact"]["runtime_bytes"]}


def bench_net(name: str, model: torch.nn.Module, sample: np.ndarray, evaluation: np.ndarray, work: Path,
              tune_seconds: float | None) -> dict:
    source = work / f"{name}.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(sample[None]),)), source)
    np.savez(work / f"{name}_eval.npz", image=evaluation)
    common = {"target": "arm-cpu", "profile": "rpi4", "eval": str(work / f"{name}_eval.npz")}
    untuned, untuned_s = timed_build(source, work, f"{name}-untuned", **common)
    report = {"match_under_qemu": match_under_qemu(untuned, model, work), "build_untuned_s": untuned_s}
    if tune_seconds is None:
        return report
    tuned, tuned_s = timed_build(source, work, f"{name}-tuned", tune_seconds=tune_seconds, **common)
    again, again_s = timed_build(source, work, f"{name}-again", **common)
    onnx, _ = timed_build(source, work, f"{name}-onnx", target="onnx", quant="float32")
    tflite, _ = timed_build(source, work, f"{name}-tflite", target="tflite", quant="float32")
    feed = {"image": sample[None]}
    runs = {"tvm_untuned": untuned.artefact.run, "tvm_tuned": tuned.artefact.run, "onnxruntime": onnx.artefact.run}
    latency = {key: [] for key in runs}
    for _ in range(3):  # in turns
        for key, run in runs.items():
            latency[key].append(host_latency_ms(run, feed, LATENCY_RUNS))
    latency = {key: round(float(np.median(times)), 2) for key, times in latency.items()}
    latency["litert_xnnpack"] = litert_latency_ms({"float32": tflite.artefact.files["model.tflite"]})["float32"]
    tuning = tuned.manifest["artefact"].get("tuning", {})
    report.update({
        "latency_ms_p50_1thread": latency,
        "tuned_over_onnxruntime": round(latency["tvm_tuned"] / latency["onnxruntime"], 3),
        "untuned_over_onnxruntime": round(latency["tvm_untuned"] / latency["onnxruntime"], 3),
        "tuning": {"seconds_allowed": tune_seconds, "records": tuning.get("records"), "build_s": tuned_s},
        "second_build_s": again_s, "second_over_tuning_build": round(again_s / tuned_s, 3),
        "second_build_found_tuning": "tuning" in again.manifest["artefact"],
        "tuned_host_matches_float": tuned.fidelity.top1_agreement,
    })
    return report


def digits_net() -> tuple[torch.nn.Module, np.ndarray]:
    model = torch.export.load(EXAMPLES / "digits_cnn.pt2").module()
    return model, np.load(EXAMPLES / "digits_eval.npz")["image"][:64]


def imagenet_net(net) -> tuple[torch.nn.Module, np.ndarray]:
    return net.model, net.evaluation[:EVAL_CROPS]


def goals(report: dict) -> dict:
    nets = list(report["nets"].values())
    timed = {name: net for name, net in report["nets"].items() if "tuned_over_onnxruntime" in net}
    result = {"aarch64_matches_float_under_qemu": all(n["match_under_qemu"]["within_limit"] for n in nets),
              "runtime_and_runner_within_10_mb": all(n["match_under_qemu"]["runtime_bytes"] <= RUNTIME_LIMIT for n in nets)}
    for name, net in timed.items():
        result[f"{name}_tuned_within_1.5x_onnxruntime"] = net["tuned_over_onnxruntime"] <= SPEED_LIMIT
        result[f"{name}_second_build_within_20pct"] = net["second_over_tuning_build"] <= REUSE_LIMIT
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tune-time", type=float, default=TUNE_SECONDS)
    parser.add_argument("--only", choices=("digits", "mobilenet_v2_224", "efficientnet_lite0_224"))
    args = parser.parse_args()
    installed = cache_root() / "tvm-runtime"
    with tempfile.TemporaryDirectory(prefix="bench-arm-") as scratch:
        work, cache = Path(scratch) / "work", Path(scratch) / "cache"
        work.mkdir()
        cache.mkdir()
        (cache / "tvm-runtime").symlink_to(installed)
        os.environ["EDGEOPT_CACHE"] = str(cache)  # an empty tuning cache, the installed runtime
        nets = {"digits": lambda: (*digits_net(), None),
                "mobilenet_v2_224": lambda: (*imagenet_net(random_mobilenet()), args.tune_time),
                "efficientnet_lite0_224": lambda: (*imagenet_net(trained_lite0()), args.tune_time)}
        report = {"threads": 1, "host_cpu": os.cpu_count(), "nets": {}}
        for name, make in nets.items():
            if args.only and name != args.only:
                continue
            model, images, tune = make()
            print(f"{name}: building for arm-cpu" + (f", tuning {tune:.0f} s" if tune else ""), flush=True)
            report["nets"][name] = bench_net(name, model, images[0], images, work, tune)
            print(json.dumps(report["nets"][name]), flush=True)
    report["goals"] = goals(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["goals"], indent=2))


if __name__ == "__main__":
    main()
