"""Small torch models and inputs shared by the tests (importable: tests/ is on pythonpath)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SHAPE = (1, 3, 8, 8)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, image):
        return self.fc(torch.relu(self.bn(self.conv(image))).flatten(1))


def tiny_net() -> nn.Module:
    """Factory for --module tests."""
    torch.manual_seed(0)
    net = TinyNet()
    net.bn.running_mean.uniform_(-0.5, 0.5)
    net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def tiny_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def torch_out(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()
