"""GridSample (spatial transformers, deformable attention): a GATHER of the corner pixels
of every sampling point from the NHWC map flattened to rows, weighted and summed.

Coordinates follow ONNX (and torch's grid_sample): x then y in [-1, 1], `align_corners`
mapping -1/1 to the centres or the outer edges of the corner pixels; `padding_mode` zeros
(out-of-map corners count 0), border (clamped) or reflection (mirrored, then clamped).
Bilinear and nearest are lowered; bicubic is refused.
"""

from __future__ import annotations

import tensorflow as tf

from edgeopt.lower._layout import NHWC, identity
from edgeopt.lower._table import lowers

MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest"}  # opset 16 and opset 20 names


def _pixel(coordinate, size: int, align_corners: bool):
    if align_corners:
        return (coordinate + 1) / 2 * (size - 1)
    return ((coordinate + 1) * size - 1) / 2


def _reflect(x, low: float, high: float):
    """Mirror x into [low, high] as often as needed."""
    span = high - low
    if span <= 0:
        return tf.zeros_like(x)
    distance = tf.abs(x - low)
    flips = tf.floor(distance / span)
    extra = distance - flips * span
    return tf.where(tf.math.floormod(flips, 2) == 0, low + extra, high - extra)


def _fit(p, size: int, padding: str, align_corners: bool):
    """Source coordinates after the padding mode (zeros leaves them for the corner mask)."""
    if padding == "reflection":
        p = _reflect(p, 0.0, size - 1.0) if align_corners else _reflect(p, -0.5, size - 0.5)
    if padding in ("border", "reflection"):
        p = tf.clip_by_value(p, 0.0, size - 1.0)
    return p


def sample(image, grid, mode: str, padding: str, align_corners: bool):
    """image NHWC [N, H, W, C], grid [N, Ho, Wo, 2] -> NHWC [N, Ho, Wo, C]."""
    batch, height, width, channels = image.shape
    rows = tf.reshape(image, [-1, channels])
    px = _fit(_pixel(grid[..., 0], width, align_corners), width, padding, align_corners)
    py = _fit(_pixel(grid[..., 1], height, align_corners), height, padding, align_corners)
    first_row = tf.reshape(tf.range(batch, dtype=tf.int32) * height * width, [batch, 1, 1])

    def corner(x, y):  # integer-valued float coordinates -> [N, Ho, Wo, C], zero outside the map
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        xi = tf.cast(tf.clip_by_value(x, 0, width - 1), tf.int32)
        yi = tf.cast(tf.clip_by_value(y, 0, height - 1), tf.int32)
        pixels = tf.gather(rows, first_row + yi * width + xi)
        return pixels * tf.cast(inside, pixels.dtype)[..., None]

    if mode == "nearest":
        return corner(tf.round(px), tf.round(py))
    x0, y0 = tf.floor(px), tf.floor(py)
    wx, wy = (px - x0)[..., None], (py - y0)[..., None]
    return ((corner(x0, y0) * (1 - wx) + corner(x0 + 1, y0) * wx) * (1 - wy)
            + (corner(x0, y0 + 1) * (1 - wx) + corner(x0 + 1, y0 + 1) * wx) * wy)


@lowers("GridSample", layout="nhwc")
def grid_sample(ctx):
    x, grid = ctx.input(0), ctx.input(1)
    mode = MODES.get(ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear"))
    padding = ctx.attr("padding_mode", "zeros")
    if x.rank != 4:
        ctx.unsupported(f"a {x.rank}-D input; only 2-D sampling (4-D input) is lowered")
    if mode is None:
        ctx.unsupported(f"mode {ctx.attr('mode')!r}; bilinear/linear and nearest are lowered")
    align_corners = bool(ctx.attr("align_corners", 0))
    ctx.emit(lambda t, g: sample(t, g, mode, padding, align_corners),
             [ctx.tensor(0, NHWC), ctx.tensor(1, identity(4))], NHWC)
