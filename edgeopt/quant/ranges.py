"""Activation ranges from calibration data: min/max, a percentile, or the MSE-optimal clip.

The ranges become fake-quant ops on the lowered model, which the TFLite converter keeps
exactly (../shared/reference/tflite-lowering.md). Ranges go on the tensors TFLite gives
their own scale: graph inputs and the outputs of ops that compute new values, but not
between a conv/FC/add and the ReLU it fuses, nor on ops that keep their input's scale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgeopt.lower import LoweredModel

METHODS = ("minmax", "percentile", "mse")
BINS = 2048
PERCENTILE = 99.99
SCALE_KEEPING = {"Transpose*", "Gather*", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "MaxPool",
                 "GlobalMaxPool", "Split", "Slice", "Pad", "Identity", "Gather", "ReduceMax", "ReduceMin"}
# int8 kernels with a fixed output scale (tensorflow.org/lite/performance/quantization_spec:
# LOGISTIC and SOFTMAX 1/256, TANH 1/128, LOG_SOFTMAX 16/256): a range of ours on their output
# only adds a requantizing QUANTIZE op behind them
FIXED_SCALE = {"Sigmoid", "Softmax", "Tanh", "LogSoftmax"}
FUSING = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul"}
FUSED = {"Relu", "Clip"}


@dataclass
class Histogram:
    low: float
    high: float
    counts: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        edges = np.linspace(self.low, self.high, len(self.counts) + 1)
        return (edges[:-1] + edges[1:]) / 2


def range_keys(lowered: LoweredModel) -> list[str]:
    consumers: dict[str, list] = {}
    for step in lowered.steps:
        for key in step.inputs:
            consumers.setdefault(key, []).append(step)
    keys = [p.key for p in lowered.inputs if np.dtype(p.dtype).kind == "f"]
    for step in lowered.steps:
        if step.op_type in SCALE_KEEPING or step.op_type in FIXED_SCALE or step.params.get("keeps_scale"):
            continue  # keeps_scale: AVERAGE_POOL_2D, whose int8 kernel needs its input's scale
        for key in step.outputs:
            users = consumers.get(key, [])
            fused = step.op_type in FUSING and len(users) == 1 and users[0].op_type in FUSED
            if not fused:
                keys.append(key)
    return keys


def _stream(lowered: LoweredModel, feeds: Iterable[dict], keys: list[str]):
    function = lowered.function(taps=keys)
    for feed in feeds:
        results = function(*(tf.constant(x) for x in lowered.tf_arrays(feed)))
        yield [results[f"tap{i}"].numpy() for i in range(len(keys))]


def _mse_range(h: Histogram) -> tuple[float, float]:
    """The clip [a*low, a*high] minimising expected 8-bit quantization error."""
    x, n = h.centres, h.counts
    best, best_error = (h.low, h.high), np.inf
    for a in np.linspace(0.2, 1.0, 81):
        low, high = a * h.low, a * h.high
        step = (high - low) / 255 or 1e-12
        inside = (x >= low) & (x <= high)
        clipped = np.clip(x, low, high)
        error = np.sum(n[inside]) * step * step / 12 + np.sum(n[~inside] * (x[~inside] - clipped[~inside]) ** 2)
        if error < best_error:
            best, best_error = (low, high), error
    return best


def _percentile_range(h: Histogram) -> tuple[float, float]:
    cumulative = np.cumsum(h.counts) / max(h.counts.sum(), 1)
    edges = np.linspace(h.low, h.high, len(h.counts) + 1)
    high = edges[min(np.searchsorted(cumulative, PERCENTILE / 100) + 1, len(edges) - 1)]
    low = edges[np.searchsorted(cumulative, 1 - PERCENTILE / 100)] if h.low < 0 else h.low
    return float(low), float(high)


def activation_ranges(lowered: LoweredModel, feeds: Iterable[dict], method: str) -> dict[str, tuple[float, float]]:
    """(low, high) per tensor key, always containing 0 (TFLite's asymmetric int8 needs it)."""
    keys = range_keys(lowered)
    low = np.full(len(keys), np.inf)
    high = np.full(len(keys), -np.inf)
    for taps in _stream(lowered, feeds, keys):
        low = np.minimum(low, [t.min() for t in taps])
        high = np.maximum(high, [t.max() for t in taps])
    low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
    if method == "minmax":
        return {k: (float(lo), float(hi)) for k, lo, hi in zip(keys, low, high)}
    counts = [np.zeros(BINS) for _ in keys]
    for taps in _stream(lowered, feeds, keys):
        for c, t, lo, hi in zip(counts, taps, low, high):
            c += np.histogram(t, BINS, (lo, hi if hi > lo else lo + 1e-6))[0]
    choose = _mse_range if method == "mse" else _percentile_range
    return {k: choose(Histogram(float(lo), float(hi), c)) for k, lo, hi, c in zip(keys, low, high, counts)}
