"""Padding arithmetic shared by the convolution and pooling lowerings."""

from __future__ import annotations

import math

import tensorflow as tf


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME" padding for one dim: the odd pixel goes at the end."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def onnx_pads(ctx, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(begin, end) per spatial dim from the node's auto_pad/pads attributes."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [same_pads(*args) for args in zip(sizes, kernel, strides, dilations)]
        return pads if auto_pad == "SAME_UPPER" else [(end, begin) for begin, end in pads]
    if auto_pad == "VALID":
        return [(0, 0)] * len(sizes)
    flat = ctx.attr("pads") or [0] * (2 * len(sizes))
    return list(zip(flat[:len(sizes)], flat[len(sizes):]))


def tf_padding(pads, sizes, kernel, strides, dilations):
    """"VALID", "SAME", or None when the pads need an explicit PAD op."""
    if all(p == (0, 0) for p in pads):
        return "VALID"
    if all(p == same_pads(*args) for p, args in zip(pads, zip(sizes, kernel, strides, dilations))):
        return "SAME"
    return None


def window(ctx, x_shape, kernel):
    """strides, dilations, pads and the TF padding mode for a 2-D window over NCHW `x_shape`."""
    strides = ctx.attr("strides") or [1, 1]
    dilations = ctx.attr("dilations") or [1, 1]
    sizes = x_shape[2:]
    pads = onnx_pads(ctx, sizes, kernel, strides, dilations)
    return strides, dilations, pads, tf_padding(pads, sizes, kernel, strides, dilations)


def pad_nhwc(x, pads, value=0.0):
    return tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], constant_values=value)


def edge_pad_nhwc(x, pads):
    """Pads H and W by repeating the edge rows and columns (SLICE + CONCATENATION, which
    XNNPACK and the Edge TPU run in int8). A max pool over them equals one over -inf
    padding, because every window that reaches the padding also holds the edge value it
    repeats; and, unlike a -inf (float32 lowest) pad value, it adds nothing to the range
    that int8 calibration gives the tensor."""
    for axis, (begin, end) in zip((1, 2), pads):
        if begin == end == 0:
            continue
        size = list(x.shape)  # explicit: XNNPACK does not take a SLICE with -1 ("to the end") sizes
        size[axis] = 1
        last = [0, 0, 0, 0]
        last[axis] = x.shape[axis] - 1
        x = tf.concat([tf.slice(x, [0, 0, 0, 0], size)] * begin + [x] + [tf.slice(x, last, size)] * end, axis)
    return x


def require_2d(ctx, rank: int) -> None:
    if rank != 4:
        ctx.unsupported(f"only 2-D (4-D NCHW tensor) is lowered, this input has rank {rank}",
                        hint="Reshape 1-D/3-D convolutions and pools to 2-D in the source model, or use --target onnx.")
