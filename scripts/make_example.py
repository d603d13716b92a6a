"""Train the example model: a small CNN on scikit-learn's handwritten digits (real data,
1,797 8x8 scans, upsampled to 16x16), saved as an ExportedProgram plus calibration and
evaluation data with labels.

    python scripts/make_example.py --out examples
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

SIDE = 16


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4 * 4, 10))

    def forward(self, image):
        return self.head(self.features(image))


def digits_dataset() -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 [N, 1, 16, 16] in [0, 1], labels int64."""
    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = nn.functional.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return x.numpy(), digits.target.astype(np.int64)


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, factory=DigitsCNN) -> nn.Module:
    torch.manual_seed(seed)
    model = factory()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xs))
        for start in range(0, len(xs), 64):
            batch = order[start:start + 64]
            loss = nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def save_splits(out: Path, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed split every example model uses: 1,297 train, 200 calibration, 300 eval;
    writes the calibration and evaluation sets (with labels) and returns the indices."""
    order = np.random.default_rng(0).permutation(len(x))
    splits = {"train": order[:1297], "calib": order[1297:1497], "eval": order[1497:]}
    np.savez(out / "digits_calib.npz", image=x[splits["calib"]], y=y[splits["calib"]])
    np.savez(out / "digits_eval.npz", image=x[splits["eval"]], y=y[splits["eval"]])
    return splits


def report_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, label: str, path: Path) -> None:
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    print(f"{label}: eval accuracy {accuracy:.2%} on {len(x)} held-out digits -> {path}")


def make_example(out: Path, epochs: int = 8) -> dict[str, Path]:
    """Train and save; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    x, y = digits_dataset()
    splits = save_splits(out, x, y)
    eval_i = splits["eval"]
    model = train(x[splits["train"]], y[splits["train"]], epochs)
    paths = {"model": out / "digits_cnn.pt2", "calib": out / "digits_calib.npz", "eval": out / "digits_eval.npz"}
    program = torch.export.export(model, (torch.from_numpy(x[:1]),))
    torch.export.save(program, paths["model"])
    report_accuracy(model, x[eval_i], y[eval_i], "digits CNN", paths["model"])
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"))
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    make_example(args.out, args.epochs)
