"""MaxPool, AveragePool and the global pools on NHWC tensors.

Pads TF cannot express ("SAME"/"VALID") become an explicit PAD (MaxPool: see
`_max_pool_pad`); an average whose window count differs from TF's (count_include_pad,
ceil_mode) is rescaled by a constant map of window counts computed at lowering time.
A window larger than the padded input (transformers' EfficientNet pools its 7x7 map with a
1280x1280 ceil-mode window) is cut to the padded input first: padding up to the window
would make a 1280x1280x1280 tensor (8 GB) that planning, calibration and the runtime all
allocate.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import NHWC
from edgeopt.lower._table import lowers
from edgeopt.lower.ops._spatial import edge_pad_nhwc, pad_nhwc, require_2d, window


def _ceil_extra(ctx, sizes, kernel, strides, pads) -> list[int]:
    """End padding that turns ceil_mode output sizes into floor ones (a window must start
    inside the input or its begin padding, as ONNX and PyTorch require)."""
    if not ctx.attr("ceil_mode", 0):
        return [0, 0]
    extra = []
    for n, k, s, (b, e) in zip(sizes, kernel, strides, pads):
        span = n + b + e - k
        out = math.ceil(span / s) + 1
        if (out - 1) * s >= n + b:
            out -= 1
        extra.append(max((out - 1) * s + k - (n + b + e), 0))
    return extra


def _fit_window(sizes, kernel, pads, padding):
    """The kernel cut to the padded input, and the TF padding for it. Such a window gives one
    output along its axis (ONNX and PyTorch require a window to start inside the padded
    input), covering the same positions as before: what lies beyond was never counted."""
    fitted = [min(k, n + b + e) for n, k, (b, e) in zip(sizes, kernel, pads)]
    if fitted == list(kernel):
        return list(kernel), padding
    return fitted, "VALID" if all(p == (0, 0) for p in pads) else None


def _common(ctx):
    x = ctx.input(0)
    require_2d(ctx, x.rank)
    if ctx.output_used(1):
        ctx.unsupported("the Indices output of MaxPool has no TFLite equivalent")
    kernel = ctx.attr("kernel_shape")
    strides, dilations, pads, padding = window(ctx, x.shape, kernel)
    if list(dilations) != [1, 1]:
        ctx.unsupported(f"pooling with dilations {dilations}")
    kernel, padding = _fit_window(x.shape[2:], kernel, pads, padding)
    extra = _ceil_extra(ctx, x.shape[2:], kernel, strides, pads)
    if any(extra):
        padding = None
    total = [(b, e + x_) for (b, e), x_ in zip(pads, extra)]
    return x, kernel, strides, pads, padding, total


def _lower_bound(ctx) -> float | None:
    """A value no element of the input is below, when the op making it says so (ReLU, Clip)."""
    producer = ctx.node.inputs[0].producer()
    if producer is None or producer.op_type not in ("Relu", "Clip"):
        return None
    if producer.op_type == "Relu":
        return 0.0
    low = producer.inputs[1] if len(producer.inputs) > 1 else None
    if low is not None and low.const_value is not None:
        return float(low.const_value.numpy())
    attribute = producer.attributes.get("min")  # Clip before opset 11
    return float(attribute.value) if attribute is not None else None


def _max_pool_pad(ctx, total):
    """The explicit pad of a max pool. Never the float lowest (-3.4e38) value: int8
    calibration would give the padded tensor, and through the PAD the layer before it, a
    range of +-3.4e38 (scale ~1e36), flushing every activation to the zero point, and XNNPACK
    refuses the layer after it (requantization scale >= 256). A known lower bound of the
    input (0 after ReLU, one PAD, as Keras' own ResNet does) or the repeated edge
    values give the same maximum."""
    bound = _lower_bound(ctx)
    if bound is not None:
        return lambda t: pad_nhwc(t, total, t.dtype.as_numpy_dtype(bound))  # 0: a plain PAD
    return lambda t: edge_pad_nhwc(t, total)


@lowers("MaxPool", layout="nhwc")
def max_pool(ctx):
    _, kernel, strides, _, padding, total = _common(ctx)
    pad = _max_pool_pad(ctx, total) if padding is None else None

    def run(t):
        if pad is not None:
            return tf.nn.max_pool2d(pad(t), kernel, strides, "VALID")
        return tf.nn.max_pool2d(t, kernel, strides, padding)

    ctx.emit(run, [ctx.tensor(0, NHWC)], NHWC, outputs=[0])


def _global(sizes, kernel, pads, include_pad: bool) -> bool:
    """Whether the pool is one window averaging exactly the whole input: the (fitted) window
    spans the input and its begin pad is empty, and no pad is counted."""
    return (all(b == 0 and k >= n for n, k, (b, _) in zip(sizes, kernel, pads))
            and (not include_pad or all(p == (0, 0) for p in pads)))


@lowers("AveragePool", layout="nhwc")
def average_pool(ctx):
    x, kernel, strides, pads, padding, total = _common(ctx)
    include_pad = bool(ctx.attr("count_include_pad", 0))
    if _global(x.shape[2:], kernel, pads, include_pad):
        # one window over the whole map: a MEAN, which has its own int8 output scale; int8
        # AVERAGE_POOL_2D must keep its input's, too coarse for the average (transformers'
        # EfficientNet: pooled values ~1.4 steps of the last SiLU's scale, a QUANTIZE after it)
        ctx.emit(lambda t: tf.reduce_mean(t, [1, 2], keepdims=True), [ctx.tensor(0, NHWC)], NHWC)
        return
    if padding == "VALID" or (padding == "SAME" and not include_pad):  # int8: keeps its input's scale
        ctx.emit(lambda t: tf.nn.avg_pool2d(t, kernel, strides, padding), [ctx.tensor(0, NHWC)], NHWC,
                 params={"keeps_scale": True})
        return
    # counted positions: the input, plus the explicit pads when count_include_pad
    mask = np.ones((1, *x.shape[2:], 1), np.float32)
    mask = np.pad(mask, [(0, 0), *pads, (0, 0)], constant_values=float(include_pad))
    extra = [(0, t[1] - p[1]) for t, p in zip(total, pads)]
    mask = np.pad(mask, [(0, 0), *extra, (0, 0)])
    counted = tf.nn.avg_pool2d(mask, kernel, strides, "VALID").numpy()
    rescale = ctx.constant((1.0 / np.maximum(counted, 1e-12)).astype(np.float32))

    def run(t, scale):
        return tf.nn.avg_pool2d(pad_nhwc(t, total), kernel, strides, "VALID") * scale

    ctx.emit(run, [ctx.tensor(0, NHWC), rescale], NHWC)


@lowers("GlobalAveragePool", layout="nhwc")
def global_average_pool(ctx):
    require_2d(ctx, ctx.input(0).rank)
    ctx.emit(lambda t: tf.reduce_mean(t, [1, 2], keepdims=True), [ctx.tensor(0, NHWC)], NHWC)


@lowers("GlobalMaxPool", layout="nhwc")
def global_max_pool(ctx):
    require_2d(ctx, ctx.input(0).rank)
    ctx.emit(lambda t: tf.reduce_max(t, [1, 2], keepdims=True), [ctx.tensor(0, NHWC)], NHWC)
