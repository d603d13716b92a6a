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


class AttentionBlock(nn.Module):
    """A pre-norm transformer block (two heads, GELU MLP) over 8 tokens of width 32."""

    def __init__(self, width: int = 32, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.head = nn.Linear(width, 10)

    def forward(self, tokens):
        batch, length, width = tokens.shape
        normed = self.norm1(tokens)
        q, k, v = (f(normed).reshape(batch, length, self.heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        attention = torch.softmax(q @ k.transpose(-2, -1) / (width // self.heads) ** 0.5, dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, length, width)
        tokens = tokens + self.proj(mixed)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return self.head(tokens.mean(1))


def attention_block() -> nn.Module:
    torch.manual_seed(0)
    return AttentionBlock().eval()


class EdgeTpuTroubleNet(nn.Module):
    """What keeps a model off the Edge TPU, in small: LeakyReLU and GELU (no Edge TPU kernels),
    a wide fully connected layer (the second output), and a Softmax over channels at the end of
    the first output (segmentation-style). `conv_after_softmax` puts a weighted layer after
    the Softmax, which no fix can move to the CPU."""

    def __init__(self, conv_after_softmax: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 3, padding=1),
                                  nn.GELU())
        self.segment = nn.Conv2d(8, 4, 1)
        self.wide = nn.Linear(8 * 8 * 8, 256)
        self.after = nn.Conv2d(4, 4, 1) if conv_after_softmax else nn.Identity()

    def forward(self, image):
        features = self.stem(image)
        return self.after(torch.softmax(self.segment(features), dim=1)), self.wide(features.flatten(1))
