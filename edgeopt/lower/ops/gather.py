"""Index-tensor gathers and scatters: GatherND, GatherElements, ScatterND.

All work in the ONNX layout (the index tensors address ONNX axes). TFLite has GATHER_ND
and SCATTER_ND (which scatters into zeros), so GatherElements becomes a GATHER_ND of full
coordinates, and ScatterND keeps what is not overwritten with a constant mask.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import identity
from edgeopt.lower._table import lowers


def _positive(indices: np.ndarray, dims) -> np.ndarray:
    """Negative ONNX indices counted from the end of the axis each column addresses."""
    dims = np.asarray(dims, np.int64)
    return np.where(indices < 0, indices + dims, indices).astype(np.int32)


@lowers("GatherND")
def gather_nd(ctx):
    data, indices = ctx.input(0), ctx.input(1)
    batch_dims = ctx.attr("batch_dims", 0)
    depth = indices.shape[-1]
    if indices.const is not None:
        index = _positive(indices.const, data.shape[batch_dims:batch_dims + depth])
        if data.const is not None:
            ctx.emit_constant(tf.gather_nd(data.const, index, batch_dims=batch_dims).numpy())
            return
        ctx.emit(lambda t: tf.gather_nd(t, index, batch_dims=batch_dims), [ctx.tensor(0, identity(data.rank))])
        return
    dims = np.asarray(data.shape[batch_dims:batch_dims + depth], np.int32)
    ctx.emit(lambda t, i: tf.gather_nd(t, tf.where(i < 0, i + tf.cast(dims, i.dtype), i), batch_dims=batch_dims),
             [ctx.tensor(0, identity(data.rank)), ctx.tensor(1, identity(indices.rank))])


def _coordinates(index, axis: int, shape) -> tf.Tensor:
    """Full coordinates [..., rank] whose `axis` column is `index`, the others its position."""
    grid = np.stack(np.meshgrid(*[np.arange(d, dtype=np.int32) for d in shape], indexing="ij"), -1)
    columns = [tf.cast(index, tf.int32) if a == axis else grid[..., a] for a in range(len(shape))]
    return tf.stack(columns, -1)


@lowers("GatherElements", layout="any")
def gather_elements(ctx):
    data, indices = ctx.input(0), ctx.input(1)
    axis = ctx.attr("axis", 0) % data.rank
    if indices.const is not None:
        coords = _coordinates(_positive(indices.const, data.shape[axis]), axis, indices.shape).numpy()
        if data.const is not None:
            ctx.emit_constant(data.const[tuple(np.moveaxis(coords, -1, 0))])
            return
        perm = data.perm  # coordinates re-laid like the data: no transpose for an NHWC input
        coords = np.transpose(coords, (*perm, data.rank))[..., list(perm)]
        ctx.emit(lambda t: tf.gather_nd(t, coords), [ctx.tensor(0, perm)], perm)
        return

    def run(t, i):
        i = tf.where(i < 0, i + data.shape[axis], i)
        return tf.gather_nd(t, _coordinates(i, axis, indices.shape))

    ctx.emit(run, [ctx.tensor(0, identity(data.rank)), ctx.tensor(1, identity(indices.rank))])


@lowers("ScatterND")
def scatter_nd(ctx):
    data, updates = ctx.input(0), ctx.input(2)
    reduction = ctx.attr("reduction", "none")
    if reduction not in ("none", "add"):
        ctx.unsupported(f"ScatterND reduction {reduction!r} (TFLite scatters by replacing or adding)")
    raw = ctx.const(1, "indices")
    index = _positive(raw, data.shape[:raw.shape[-1]])
    shape = np.asarray(data.shape, np.int32)
    keep = np.ones(data.shape, bool)
    keep[tuple(np.moveaxis(index, -1, 0))] = False
    ident = identity(data.rank)

    def run(t, u):
        scattered = tf.scatter_nd(index, u, shape)
        if reduction == "add":
            return t + scattered
        return tf.where(keep, t, scattered)

    ctx.emit(run, [ctx.tensor(0, ident), ctx.tensor(2, identity(updates.rank))])
