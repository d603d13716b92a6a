"""Block rearrangements between channels and space: DepthToSpace, SpaceToDepth, Col2Im.

TFLite's DEPTH_TO_SPACE / SPACE_TO_DEPTH work on NHWC with the channel split as
(row offset, column offset, channel), which is ONNX's DCR order; CRD order (channel first)
is one constant channel GATHER away. Col2Im (torch's `fold`, which MobileViTV2 uses to put
patches back) is a pure rearrangement when the blocks do not overlap, and is lowered
only then.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import NHWC, identity
from edgeopt.lower._table import lowers


def _crd_to_dcr(channels: int, block: int) -> np.ndarray:
    """Channel gather turning CRD order (c, i, j) into DCR order (i, j, c)."""
    out_channels = channels // (block * block)
    return np.array([c * block * block + ij for ij in range(block * block) for c in range(out_channels)], np.int32)


@lowers("DepthToSpace", layout="nhwc")
def depth_to_space(ctx):
    x = ctx.input(0)
    block = int(ctx.attr("blocksize"))
    if x.rank != 4:
        ctx.unsupported(f"a {x.rank}-D input; DepthToSpace takes 4-D")
    order = _crd_to_dcr(x.shape[1], block) if ctx.attr("mode", "DCR") == "CRD" else None
    if order is None:
        ctx.emit(lambda t: tf.nn.depth_to_space(t, block), [ctx.tensor(0, NHWC)], NHWC)
    else:
        ctx.emit(lambda t: tf.nn.depth_to_space(tf.gather(t, order, axis=-1), block), [ctx.tensor(0, NHWC)], NHWC)


@lowers("SpaceToDepth", layout="nhwc")
def space_to_depth(ctx):
    x = ctx.input(0)
    if x.rank != 4:
        ctx.unsupported(f"a {x.rank}-D input; SpaceToDepth takes 4-D")
    block = int(ctx.attr("blocksize"))
    if ctx.attr("mode", "DCR") != "CRD":
        ctx.emit(lambda t: tf.nn.space_to_depth(t, block), [ctx.tensor(0, NHWC)], NHWC)
        return
    order = np.argsort(_crd_to_dcr(x.shape[1] * block * block, block)).astype(np.int32)  # DCR -> CRD
    ctx.emit(lambda t: tf.gather(tf.nn.space_to_depth(t, block), order, axis=-1), [ctx.tensor(0, NHWC)], NHWC)


@lowers("Col2Im")
def col2im(ctx):
    x = ctx.input(0)
    image = [int(d) for d in ctx.const(1, "image_shape")]
    block = [int(d) for d in ctx.const(2, "block_shape")]
    if len(image) != 2:
        ctx.unsupported(f"a {len(image)}-D image; only 2-D Col2Im is lowered")
    strides, dilations = ctx.attr("strides", [1, 1]), ctx.attr("dilations", [1, 1])
    pads = ctx.attr("pads", [0, 0, 0, 0])
    if list(strides) != block or list(dilations) != [1, 1] or any(pads) or image[0] % block[0] or image[1] % block[1]:
        ctx.unsupported(f"overlapping or padded blocks (block {block}, strides {list(strides)}, dilations "
                        f"{list(dilations)}, pads {list(pads)}, image {image}); only blocks that tile the image "
                        "exactly (stride = block, no pads, no dilation) are lowered",
                        hint="Use fold/Col2Im with stride equal to the kernel size, or build with --target onnx.")
    (kh, kw), (h, w) = block, image
    batch, channels = x.shape[0], x.shape[1] // (kh * kw)
    blocks = (batch, channels, kh, kw, h // kh, w // kw)
    # (N, C*kh*kw, L) -> (N, H/kh, kh, W/kw, kw, C) -> NHWC; a batch of one leaves the batch
    # axis out (see MAX_TRANSPOSE_RANK in _builder.py)
    blocks, order = (blocks[1:], (3, 1, 4, 2, 0)) if batch == 1 else (blocks, (0, 4, 2, 5, 3, 1))

    def fold(t):
        return tf.reshape(tf.transpose(tf.reshape(t, blocks), order), (batch, h, w, channels))

    ctx.emit(fold, [ctx.tensor(0, identity(x.rank))], NHWC)
