"""`make bench`: a build's memory scales with the batch, not the training set.

A small conv net on 3x128x128 images is pruned and fine-tuned (`--prune 0.5 --train-steps
30`) on a training set of 256 samples and on one 8x larger (50 and 403 MB of float32), each
saved with np.savez and as a folder of PNG files (both read a batch at a time:
edgeopt.stored_arrays) and, as the reference, with np.savez_compressed (which cannot be read in
pieces and is loaded whole). The figure is
the build's peak resident memory (the largest stage's, from `--json`) on the large set over
the small one. The same two sets (np.savez) are then the calibration data of an int8 TFLite
build, which reads them in passes a batch at a time (edgeopt.data.Batches).

    python scripts/bench_memory.py --out bench-results/memory.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SHAPE = (3, 128, 128)
SMALL, LARGE = 256, 2048  # training samples
STEPS = 30
GOAL = 1.1  # peak on the large set over the small one, for np.savez and image folders


def make_net(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
    torch.export.save(torch.export.export(net, (torch.zeros(1, *SHAPE),)), path)


def save_samples(path: Path, count: int, seed: int, kind: str) -> Path:
    """Random pixel images as `kind` stores them: np.savez or np.savez_compressed of pixels / 255,
    or a folder of PNG files (edgeopt's default preprocessing scales them by 1/255 too)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (count, *SHAPE), dtype=np.uint8)
    if kind == "image folder":
        path.mkdir()
        for i, image in enumerate(pixels):
            Image.fromarray(image.transpose(1, 2, 0)).save(path / f"{i:05d}.png")
    else:
        (np.savez_compressed if kind == "savez_compressed" else np.savez)(path, x=pixels.astype(np.float32) / 255)
    return path


def peak_mb(*arguments) -> float:
    """The build's peak resident memory: its largest stage's, the converter child's included."""
    command = [sys.executable, "-m", "edgeopt", "build", *map(str, arguments), "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    report = json.loads(done.stdout)
    if not report["ok"]:
        raise RuntimeError(f"build failed (exit {done.returncode}): {report['error']['message']}")
    return max(max(stage["peak_rss_mb"], stage.get("child_peak_rss_mb") or 0) for stage in report["stages"])


def large_over_small(work: Path, kind: str, label: str, build_arguments) -> dict:
    """Peaks of the build `build_arguments(samples)` on SMALL and on LARGE samples stored as `kind`."""
    peaks = {}
    for count in (SMALL, LARGE):
        samples = save_samples(work / f"samples_{count}{'' if kind == 'image folder' else '.npz'}", count, 1, kind)
        peaks[count] = round(peak_mb(*build_arguments(samples)), 1)
        shutil.rmtree(samples) if samples.is_dir() else samples.unlink()
        print(f"{label}, {count} samples: peak {peaks[count]:,.0f} MB", flush=True)
    return {"peak_mb": peaks, "large_over_small": round(peaks[LARGE] / peaks[SMALL], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/memory.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net, out = work / "net.pt2", work / "dist"
        make_net(net)
        calib = save_samples(work / "calib.npz", 64, 0, "savez")

        def training(samples: Path) -> tuple:
            return (net, "--target", "onnx", "--calib", calib, "--prune", "0.5", "--train-data", samples,
                    "--train-steps", STEPS, "--out", out)

        def calibration(samples: Path) -> tuple:
            return net, "--target", "tflite", "--quant", "int8", "--calib", samples, "--eval", calib, "--out", out

        rows = {kind: large_over_small(work, kind, f"{kind}, training", training)
                for kind in ("savez", "image folder", "savez_compressed")}
        rows["int8 calibration"] = large_over_small(work, "savez", "int8 calibration", calibration)
    goals = {f"peak_ratio_{kind.replace(' ', '_')}": {"goal": f"<= {GOAL}", "measured": rows[kind]["large_over_small"],
                                                       "met": rows[kind]["large_over_small"] <= GOAL}
             for kind in ("savez", "image folder", "int8 calibration")}
    result = {"samples": [SMALL, LARGE], "sample_bytes": int(np.prod(SHAPE)) * 4, "runs": rows, "goals": goals}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["goals"], indent=2))


if __name__ == "__main__":
    main()
