"""Conv (plain, grouped, depthwise) and ConvTranspose: weights re-laid for TF's NHWC kernels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import NHWC
from edgeopt.lower._table import lowers
from edgeopt.lower.ops._spatial import pad_nhwc, require_2d, window


def _bias(ctx, index: int, channels: int):
    array = ctx.optional_const(index, "bias")
    return ctx.variable("bias", np.zeros(channels, np.float32) if array is None else array)


def _split_groups(x, kernel, bias, groups: int, conv):
    """A grouped conv as one conv per group joined by a concat (SPLIT, CONV_2D..., CONCATENATION).

    TF writes a grouped conv as one CONV_2D of version 6, which edgetpu_compiler 16 cannot
    parse (google-coral/edgetpu#631): the whole model fails to compile. Each group's bias is
    added before the concat so that the converter fuses it into that group's CONV_2D.
    """
    pieces = zip(tf.split(x, groups, axis=3), tf.split(kernel, groups, axis=3), tf.split(bias, groups))
    return tf.concat([tf.nn.bias_add(conv(t, k), b) for t, k, b in pieces], axis=3)


@lowers("Conv", layout="nhwc")
def conv(ctx):
    x = ctx.input(0)
    require_2d(ctx, x.rank)
    weight = ctx.const(1, "weight")
    out_channels, _, kh, kw = weight.shape
    groups = ctx.attr("group", 1)
    strides, dilations, pads, padding = window(ctx, x.shape, (kh, kw))
    depthwise = groups > 1 and groups == x.shape[1] and weight.shape[1] == 1
    if depthwise:  # [C*m, 1, kh, kw] -> [kh, kw, C, m]
        kernel = ctx.variable("kernel", weight.reshape(groups, out_channels // groups, kh, kw).transpose(2, 3, 0, 1))
    else:  # OIHW -> HWIO; with groups, TF infers them from the kernel's input depth
        kernel = ctx.variable("kernel", weight.transpose(2, 3, 1, 0))
    bias = _bias(ctx, 2, out_channels)
    # tf.nn.depthwise_conv2d silently miscomputes when strides and dilations are both > 1 (its
    # docs forbid the mix): run it at stride 1 on explicitly padded input, then subsample
    subsample = depthwise and max(strides) > 1 and max(dilations) > 1
    if subsample:
        padding = None

    split = groups > 1 and not depthwise and ctx.builder.edgetpu

    def run(x):
        if padding is None:
            x = pad_nhwc(x, pads)
        mode = padding or "VALID"
        if subsample:
            y = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], mode, dilations=dilations)[:, ::strides[0], ::strides[1]]
        elif depthwise:
            y = tf.nn.depthwise_conv2d(x, kernel, [1, *strides, 1], mode, dilations=dilations)
        elif split:
            return _split_groups(x, kernel, bias, groups, lambda t, k: tf.nn.conv2d(
                t, k, [1, *strides, 1], mode, dilations=[1, *dilations, 1]))
        else:
            y = tf.nn.conv2d(x, kernel, [1, *strides, 1], mode, dilations=[1, *dilations, 1])
        return tf.nn.bias_add(y, bias)

    ctx.emit(run, [ctx.tensor(0, NHWC)], NHWC, params={"kernel": kernel, "bias": bias, "channels": out_channels})


def _transpose_pads(ctx, sizes, kernel, strides, dilations, output_padding):
    """ConvTranspose (begin, end) pads per dim, following the ONNX spec's output_shape rules."""
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    full = [s * (n - 1) + p + e for n, s, p, e in zip(sizes, strides, output_padding, effective)]
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    output_shape = ctx.attr("output_shape")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [n * s for n, s in zip(sizes, strides)]
    if output_shape is None:
        flat = ctx.attr("pads") or [0] * 4
        return full, list(zip(flat[:2], flat[2:]))
    totals = [f - o for f, o in zip(full, output_shape[-2:])]
    if auto_pad == "SAME_UPPER":
        return full, [(t // 2, t - t // 2) for t in totals]
    return full, [(t - t // 2, t // 2) for t in totals]


def _dilate(kernel: np.ndarray, dilations) -> np.ndarray:
    """[kh, kw, ...] with dilation written out as zeros (TF's CPU transpose conv has none)."""
    kh, kw = kernel.shape[:2]
    out = np.zeros(((kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1, *kernel.shape[2:]), kernel.dtype)
    out[::dilations[0], ::dilations[1]] = kernel
    return out


@lowers("ConvTranspose", layout="nhwc")
def conv_transpose(ctx):
    x = ctx.input(0)
    require_2d(ctx, x.rank)
    weight = ctx.const(1, "weight")  # [C_in, C_out / group, kh, kw]
    if ctx.attr("group", 1) != 1:
        ctx.unsupported("grouped ConvTranspose has no TFLite kernel")
    kh, kw = weight.shape[2:]
    strides = ctx.attr("strides") or [1, 1]
    dilations = ctx.attr("dilations") or [1, 1]
    output_padding = ctx.attr("output_padding") or [0, 0]
    full, pads = _transpose_pads(ctx, x.shape[2:], (kh, kw), strides, dilations, output_padding)
    kernel = ctx.variable("kernel", _dilate(weight.transpose(2, 3, 1, 0), dilations))  # [kh, kw, C_out, C_in]
    bias = _bias(ctx, 2, weight.shape[1])
    shape = [x.shape[0], *full, weight.shape[1]]
    crop = [slice(max(b, 0), n - max(e, 0)) for (b, e), n in zip(pads, full)]
    grow = [[0, 0], *([max(-b, 0), max(-e, 0)] for b, e in pads), [0, 0]]  # negative pads extend the output

    def run(x):
        y = tf.nn.conv2d_transpose(x, kernel, shape, [1, *strides, 1], "VALID")
        y = y[:, crop[0], crop[1], :]
        return tf.nn.bias_add(tf.pad(y, grow) if any(map(any, grow)) else y, bias)

    ctx.emit(run, [ctx.tensor(0, NHWC)], NHWC)
