"""MobileNetV2 (Sandler et al. 2018, arXiv:1801.04381, table 2), written here: inverted
residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection), ReLU6, residual adds,
global average pool and a linear classifier.

Width 1.0 at 224x224 with 1000 classes is the 3.5 M-parameter ImageNet net (used by
`make bench`); `digits_mobilenet` is a narrow, shallow one trained on the example digits.

    python scripts/mobilenet_v2.py --out examples   # trains the digits variant
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), the paper's table 2
IMAGENET_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1))
DIGITS_BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 48, 2, 1))


def divisible(channels: float, by: int = 8) -> int:
    """Round to a multiple of 8 without dropping more than 10%, as the reference model does."""
    rounded = max(by, int(channels + by / 2) // by * by)
    return rounded + by if rounded < 0.9 * channels else rounded


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu6: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if relu6 else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [conv_bn(cin, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, relu6=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, blocks=IMAGENET_BLOCKS, classes: int = 1000, in_channels: int = 3, width: float = 1.0,
                 stem_stride: int = 2, last_channels: int = 1280):
        super().__init__()
        channels = divisible(32 * width)
        layers = [conv_bn(in_channels, channels, 3, stem_stride)]
        for expansion, c, repeats, stride in blocks:
            out = divisible(c * width)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if i == 0 else 1, expansion))
                channels = out
        last = divisible(last_channels * max(1.0, width))
        layers.append(conv_bn(channels, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, image):
        return self.classifier(self.features(image).mean((2, 3)))


def digits_mobilenet() -> MobileNetV2:
    """For 16x16 digits: stem at stride 1, two stride-2 stages, 4x4 before the pool."""
    return MobileNetV2(DIGITS_BLOCKS, classes=10, in_channels=1, width=1.0, stem_stride=1, last_channels=128)


def make_digits_mobilenet(out: Path, epochs: int = 6) -> dict[str, Path]:
    """Train on the example's split; saves .pt2 and .onnx next to the calibration/eval data."""
    from make_example import digits_dataset, report_accuracy, save_splits, train

    out.mkdir(parents=True, exist_ok=True)
    x, y = digits_dataset()
    splits = save_splits(out, x, y)
    model = train(x[splits["train"]], y[splits["train"]], epochs, factory=digits_mobilenet)
    paths = {"model": out / "digits_mobilenet.pt2", "onnx": out / "digits_mobilenet.onnx",
             "calib": out / "digits_calib.npz", "eval": out / "digits_eval.npz"}
    example = (torch.from_numpy(x[:1]),)
    torch.export.save(torch.export.export(model, example), paths["model"])
    torch.onnx.export(model, example, paths["onnx"], input_names=["image"], output_names=["logits"], dynamo=True,
                      verbose=False)
    report_accuracy(model, x[splits["eval"]], y[splits["eval"]], "digits MobileNetV2", paths["model"])
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"))
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    make_digits_mobilenet(args.out, args.epochs)
