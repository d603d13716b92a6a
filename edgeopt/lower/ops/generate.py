"""Ops that make or repeat tensors: Expand, Tile, Range, ConstantOfShape, CumSum.

Their shapes and counts must be build-time constants (edge graphs are static), so Range
and ConstantOfShape become constants; Expand and Tile keep their input's layout, their
shape and repeats re-laid to match.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._table import lowers


@lowers("Expand", layout="any")
def expand(ctx):
    x = ctx.input(0)
    target = [int(d) for d in ctx.const(1, "shape")]
    shape = np.broadcast_shapes(x.shape, tuple(target))
    if x.const is not None:
        ctx.emit_constant(np.broadcast_to(x.const, shape).copy())
        return
    rank = len(shape)
    if x.rank < rank:  # align to the right first, in the ONNX layout
        padded = (1,) * (rank - x.rank) + x.shape
        key = ctx.tensor(0, tuple(range(x.rank)))
        ctx.emit(lambda t: tf.broadcast_to(tf.reshape(t, padded), shape), [key])
        return
    tf_shape = [shape[a] for a in x.perm]
    ctx.emit(lambda t: tf.broadcast_to(t, tf_shape), [ctx.tensor(0, x.perm)], x.perm)


@lowers("Tile", layout="any")
def tile(ctx):
    x = ctx.input(0)
    repeats = [int(r) for r in ctx.const(1, "repeats")]
    if x.const is not None:
        ctx.emit_constant(np.tile(x.const, repeats))
        return
    tf_repeats = [repeats[a] for a in x.perm]
    ctx.emit(lambda t: tf.tile(t, tf_repeats), [ctx.tensor(0, x.perm)], x.perm)


@lowers("Range")
def range_(ctx):
    start, limit, delta = (ctx.const(i, what) for i, what in enumerate(("start", "limit", "delta")))
    ctx.emit_constant(np.arange(start, limit, delta, dtype=np.asarray(start).dtype))


@lowers("ConstantOfShape")
def constant_of_shape(ctx):
    shape = [int(d) for d in ctx.const(0, "shape")]
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    ctx.emit_constant(np.full(shape, value[0], value.dtype))


@lowers("CumSum", layout="any")
def cumsum(ctx):
    x = ctx.input(0)
    axis = int(np.asarray(ctx.const(1, "axis")).reshape(())) % x.rank
    exclusive, reverse = bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0))
    if x.const is not None:
        ctx.emit_constant(tf.math.cumsum(x.const, axis, exclusive=exclusive, reverse=reverse).numpy())
        return
    tf_axis = x.perm.index(axis)
    ctx.emit(lambda t: tf.math.cumsum(t, tf_axis, exclusive=exclusive, reverse=reverse), [ctx.tensor(0, x.perm)],
             x.perm)
