"""A plain VGG-style CNN trained on the digits (3x3 conv pairs, max pools, a global-average-pool
head): the net the low-rank and depthwise rewrites are measured on, where standard k x k convs
hold nearly all the weights.

    python scripts/vgg_digits.py --out /tmp/vgg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn


def conv_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class VggDigits(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*conv_relu(1, 32), *conv_relu(32, 32), nn.MaxPool2d(2),
                                      *conv_relu(32, 64), *conv_relu(64, 64), nn.MaxPool2d(2),
                                      *conv_relu(64, 64))
        self.classifier = nn.Linear(64, 10)

    def forward(self, image):
        return self.classifier(self.features(image).mean((2, 3)))


def make_vgg_digits(out: Path, epochs: int = 8) -> dict[str, Path]:
    """Train on the example's split; saves the .pt2, the calibration/eval data and the
    training split (for --train-data)."""
    from make_example import digits_dataset, report_accuracy, save_splits, train

    out.mkdir(parents=True, exist_ok=True)
    x, y = digits_dataset()
    splits = save_splits(out, x, y)
    np.savez(out / "digits_train.npz", image=x[splits["train"]], y=y[splits["train"]])
    model = train(x[splits["train"]], y[splits["train"]], epochs, factory=VggDigits)
    paths = {"model": out / "vgg_digits.pt2", "calib": out / "digits_calib.npz", "eval": out / "digits_eval.npz",
             "train": out / "digits_train.npz"}
    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), paths["model"])
    report_accuracy(model, x[splits["eval"]], y[splits["eval"]], "VGG-style digits CNN", paths["model"])
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"))
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    make_vgg_digits(args.out, args.epochs)
