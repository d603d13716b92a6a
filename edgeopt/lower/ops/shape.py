"""Ops that only move data around: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, plus
Constant, Shape and Cast.

Transpose costs nothing: it only changes how the TF tensor is read. Flatten/Reshape of an
NHWC tensor keeps PyTorch's (C, H, W) element order by recording the permutation of the
flattened axis (Val.order) for the next Gemm/MatMul to absorb into its weight rows.
"""

from __future__ import annotations

import numpy as np
import onnx
import tensorflow as tf

from edgeopt.lower._layout import NHWC, after_transpose, identity, without_axes
from edgeopt.lower._table import lowers


def _flatten_nhwc(ctx, x, out_shape) -> bool:
    """Flatten of an NHWC value to [N, C*H*W] without a transpose; False if not that case."""
    if x.perm != NHWC or x.order is not None or tuple(out_shape) != (x.shape[0], int(np.prod(x.shape[1:]))):
        return False
    n, c, h, w = x.shape
    order = None
    if h * w > 1 and c > 1:  # TF flattens (h, w, c); ONNX index of each TF position:
        order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    ctx.emit(lambda t: tf.reshape(t, out_shape), [ctx.tensor(0, NHWC)], orders=[order])
    return True


def _blocks(src, dst) -> list[tuple[list[int], list[int]]] | None:
    """Reshape src -> dst as aligned blocks (input axes, output axes) of equal size, in order."""
    blocks, i, j = [], 0, 0
    while i < len(src) and j < len(dst):
        if (src[i] == 1) != (dst[j] == 1):  # a size-1 axis on one side only is a block of its own
            blocks.append(([i], []) if src[i] == 1 else ([], [j]))
            i, j = (i + 1, j) if src[i] == 1 else (i, j + 1)
            continue
        a, b, pa, pb = [i], [j], src[i], dst[j]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb and i < len(src):
                a.append(i)
                pa, i = pa * src[i], i + 1
            elif pb < pa and j < len(dst):
                b.append(j)
                pb, j = pb * dst[j], j + 1
            else:
                return None
        blocks.append((a, b))
    if not blocks or any(src[k] != 1 for k in range(i, len(src))) or any(dst[k] != 1 for k in range(j, len(dst))):
        return None
    blocks[-1][0].extend(range(i, len(src)))  # trailing size-1 axes join the last block
    blocks[-1][1].extend(range(j, len(dst)))
    return blocks


def _reshape_in_layout(x, out_shape) -> tuple[int, ...] | None:
    """The layout in which reshaping x's TF tensor directly gives the ONNX reshape: each block
    of merged/split axes must lie contiguous and in order in x's layout; the blocks themselves
    may be stored in any order (NHWC [N,H,W,C] -> ONNX [N, C, H*W] is TF [N, H*W, C])."""
    blocks = _blocks(x.shape, out_shape)
    if blocks is None:
        return None
    placed = []
    for inputs, outputs in blocks:
        if not inputs:  # a new size-1 axis: after whatever precedes it
            placed.append(((placed[-1][0] if placed else -1) + 0.5, outputs))
            continue
        positions = [x.perm.index(a) for a in inputs]
        if positions != list(range(positions[0], positions[0] + len(positions))):
            return None
        placed.append((positions[0], outputs))
    return tuple(axis for _, outputs in sorted(placed) for axis in outputs)


def _reshape_to(ctx, x, out_shape) -> None:
    out_shape = [int(d) for d in out_shape]
    if x.const is not None:
        ctx.emit_constant(x.const.reshape(out_shape))
        return
    if _flatten_nhwc(ctx, x, out_shape):
        return
    perm = _reshape_in_layout(x, out_shape) if x.order is None and x.perm != identity(x.rank) else None
    if perm is not None:
        tf_shape = [out_shape[a] for a in perm]
        ctx.emit(lambda t: tf.reshape(t, tf_shape), [ctx.tensor(0, x.perm)], perm)
        return
    ctx.emit(lambda t: tf.reshape(t, out_shape), [ctx.tensor(0, identity(x.rank))])


@lowers("Flatten")
def flatten(ctx):
    x = ctx.input(0)
    axis = ctx.attr("axis", 1)
    axis = axis + x.rank if axis < 0 else axis
    _reshape_to(ctx, x, (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))))


@lowers("Reshape", layout="any")
def reshape(ctx):
    x = ctx.input(0)
    target = [int(d) for d in ctx.const(1, "shape")]
    if not ctx.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    _reshape_to(ctx, x, np.empty(x.shape, np.int8).reshape(target).shape)


@lowers("Transpose", layout="any")
def transpose(ctx):
    x = ctx.input(0)
    onnx_perm = tuple(int(a) for a in ctx.attr("perm") or reversed(range(x.rank)))
    shape = tuple(x.shape[a] for a in onnx_perm)
    if x.const is not None:
        ctx.emit_constant(np.transpose(x.const, onnx_perm))
        return
    ctx.alias(x, key=ctx.tensor(0, x.perm), perm=after_transpose(x.perm, onnx_perm), shape=shape, order=None)


def _axes(ctx, what: str, rank: int):
    axes = ctx.attr_or_input("axes", 1, what) if ctx.opset >= 13 else ctx.attr("axes")
    return None if axes is None else sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))


@lowers("Squeeze", layout="any")
def squeeze(ctx):
    x = ctx.input(0)
    axes = _axes(ctx, "axes", x.rank)
    axes = [a for a in range(x.rank) if x.shape[a] == 1] if axes is None else axes
    if any(x.shape[a] != 1 for a in axes):
        ctx.unsupported(f"squeezing axes {axes} of shape {list(x.shape)}: not all are 1")
    if x.const is not None:
        ctx.emit_constant(np.squeeze(x.const, tuple(axes)))
        return
    perm = without_axes(x.perm, axes)
    tf_shape = [x.shape[a] for a in x.perm if a not in axes]
    ctx.emit(lambda t: tf.reshape(t, tf_shape), [ctx.tensor(0, x.perm)], perm)


@lowers("Unsqueeze", layout="any")
def unsqueeze(ctx):
    x = ctx.input(0)
    rank = x.rank + len(np.asarray(ctx.attr_or_input("axes", 1, "axes") if ctx.opset >= 13 else ctx.attr("axes")).reshape(-1))
    new_axes = _axes(ctx, "axes", rank)
    if x.const is not None:
        ctx.emit_constant(np.expand_dims(x.const, tuple(new_axes)))
        return
    old_axes = [a for a in range(rank) if a not in new_axes]  # where each input axis lands
    perm = tuple(old_axes[a] for a in x.perm) + tuple(new_axes)
    tf_shape = [x.shape[a] for a in x.perm] + [1] * len(new_axes)
    ctx.emit(lambda t: tf.reshape(t, tf_shape), [ctx.tensor(0, x.perm)], perm)


@lowers("Constant")
def constant(ctx):
    for name, convert in (("value", np.asarray), ("value_float", np.float32), ("value_floats", np.float32),
                          ("value_int", np.int64), ("value_ints", np.int64)):
        value = ctx.attr(name)
        if value is not None:
            ctx.emit_constant(np.asarray(value, dtype=None if name == "value" else convert))
            return
    ctx.unsupported("only value / value_float(s) / value_int(s) constants are lowered")


@lowers("Shape")
def shape(ctx):
    dims = np.array(ctx.input(0).shape, np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end")
    ctx.emit_constant(dims[start:end])


@lowers("Cast", layout="any")
def cast(ctx):
    x = ctx.input(0)
    dtype = ctx.require_dtype(onnx.helper.tensor_dtype_to_np_dtype(ctx.attr("to")), "the Cast target")
    if x.const is not None:
        ctx.emit_constant(x.const.astype(dtype.as_numpy_dtype))
        return
    ctx.emit(lambda t: tf.cast(t, dtype), [ctx.tensor(0, None, keep_order=True)], x.perm, orders=[x.order])
