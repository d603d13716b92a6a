"""Resize (nearest and linear, 4-D) on NHWC tensors.

The source coordinate of every output row and column is computed here by the ONNX rules.
When one of TF's resize kernels reads the same coordinates it is used (RESIZE_BILINEAR /
RESIZE_NEAREST_NEIGHBOR); otherwise gathers with those exact indices (and a lerp for
linear) reproduce ONNX, whatever the coordinate mode.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import NHWC
from edgeopt.lower._table import lowers

TF_FLAGS = ((False, True), (False, False), (True, False))  # (align_corners, half_pixel_centers)
ROUNDING = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn")


def _onnx_coords(mode: str, size: int, out: int, scale: float) -> np.ndarray:
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out > 1):
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out / (scale * size)
        offset = size / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "align_corners":  # ONNX uses the unrounded output length here
        length = scale * size
        return x * (size - 1) / (length - 1) if length != 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    return np.zeros_like(x)  # pytorch_half_pixel with a single output pixel


def _tf_coords(size: int, out: int, align_corners: bool, half_pixel: bool, nearest: bool) -> np.ndarray:
    """The source coordinates TF's (and TFLite's) resize kernels read."""
    x = np.arange(out, dtype=np.float64)
    scale = (size - 1) / (out - 1) if align_corners and out > 1 else size / out
    if nearest:
        source = (x + 0.5) * scale if half_pixel else x * scale
        return np.minimum(np.round(source) if align_corners else np.floor(source), size - 1)
    return (x + 0.5) * scale - 0.5 if half_pixel else x * scale


def _target(ctx, x) -> tuple[list[int], list[float]]:
    """Output size and scale of the two spatial dims."""
    rank_axes = [int(a) % x.rank for a in ctx.attr("axes") or range(x.rank)]
    sizes = ctx.optional_const(3, "sizes") if ctx.input_count > 3 else None
    scales = ctx.optional_const(2, "scales") if ctx.input_count > 2 else None
    full_scale, full_size = [1.0] * x.rank, list(x.shape)
    if sizes is not None and sizes.size:
        ratios = [int(s) / x.shape[a] for s, a in zip(sizes, rank_axes)]
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            common = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [common] * len(ratios)
        for a, s, r in zip(rank_axes, sizes, ratios):
            full_scale[a] = r
            full_size[a] = int(s) if policy == "stretch" else int(np.floor(x.shape[a] * r + 0.5))
    elif scales is not None and scales.size:
        for a, s in zip(rank_axes, scales):
            full_scale[a], full_size[a] = float(s), int(np.floor(x.shape[a] * float(s)))
    else:
        ctx.unsupported("Resize needs constant scales or sizes")
    if full_size[:2] != list(x.shape[:2]):
        ctx.unsupported(f"Resize of the batch or channel dims ({list(x.shape)} -> {full_size})")
    return full_size[2:], full_scale[2:]


def _lerp_gather(t, coords, sizes):
    for axis, (c, n) in enumerate(zip(coords, sizes), start=1):
        c = np.clip(c, 0, n - 1)
        low = np.floor(c).astype(np.int32)
        high = np.minimum(low + 1, n - 1)
        weight = (c - low).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(4)])
        t = tf.gather(t, low, axis=axis) * (1.0 - weight) + tf.gather(t, high, axis=axis) * weight
    return t


@lowers("Resize", layout="nhwc")
def resize(ctx):
    x = ctx.input(0)
    if x.rank != 4 or ctx.opset < 11:
        ctx.unsupported("only 4-D Resize from opset 11 on is lowered")
    for attribute, default in (("antialias", 0), ("exclude_outside", 0)):
        if ctx.attr(attribute, default) != default:
            ctx.unsupported(f"Resize with {attribute}={ctx.attr(attribute)!r}")
    size, scales = _target(ctx, x)
    mode = ctx.attr("mode", "nearest")
    coords_mode = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear") or coords_mode not in COORDINATE_MODES:
        ctx.unsupported(f"Resize mode={mode!r}, coordinate_transformation_mode={coords_mode!r}")
    nearest = mode == "nearest"
    sizes_in = x.shape[2:]
    wanted = [_onnx_coords(coords_mode, n, o, s) for n, o, s in zip(sizes_in, size, scales)]
    if nearest:
        rounding = ROUNDING[ctx.attr("nearest_mode", "round_prefer_floor")]
        wanted = [np.clip(rounding(w), 0, n - 1) for w, n in zip(wanted, sizes_in)]
    else:
        wanted = [np.clip(w, 0, n - 1) for w, n in zip(wanted, sizes_in)]
    kernel = tf.compat.v1.image.resize_nearest_neighbor if nearest else tf.compat.v1.image.resize_bilinear
    for align, half in TF_FLAGS:
        theirs = [np.clip(_tf_coords(n, o, align, half, nearest), 0, n - 1) for n, o in zip(sizes_in, size)]
        if all(np.allclose(w, t, atol=1e-6) for w, t in zip(wanted, theirs)):
            ctx.emit(lambda t: kernel(t, size, align_corners=align, half_pixel_centers=half), [ctx.tensor(0, NHWC)], NHWC)
            return
    if nearest:
        rows, cols = (w.astype(np.int32) for w in wanted)
        ctx.emit(lambda t: tf.gather(tf.gather(t, rows, axis=1), cols, axis=2), [ctx.tensor(0, NHWC)], NHWC)
    else:
        ctx.emit(lambda t: _lerp_gather(t, wanted, sizes_in), [ctx.tensor(0, NHWC)], NHWC)
