"""Concat, Split, Slice, Pad and Gather: axis attributes remapped into the TF layout."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import identity, without_axes
from edgeopt.lower._table import lowers


@lowers("Concat", layout="any")
def concat(ctx):
    values = [ctx.input(i) for i in range(ctx.input_count)]
    rank = values[0].rank
    axis = ctx.attr("axis") % rank
    if all(v.const is not None for v in values):
        ctx.emit_constant(np.concatenate([v.const for v in values], axis))
        return
    perm = next((v.perm for v in values if v.const is None and v.perm != identity(rank)), identity(rank))
    keys = [ctx.tensor(i, perm) for i in range(ctx.input_count) if values[i].shape[axis] != 0]
    ctx.emit(lambda *ts: tf.concat(ts, perm.index(axis)), keys, perm)


def _split_sizes(ctx, length: int) -> list[int]:
    count = len(ctx.node.outputs)
    sizes = ctx.attr_or_input("split", 1, "split") if ctx.opset >= 13 else ctx.attr("split")
    if sizes is not None and len(sizes):
        return [int(s) for s in np.asarray(sizes).reshape(-1)]
    chunk = -(-length // count)  # opset 18 num_outputs: ceil-sized chunks, the last smaller
    return [min(chunk, length - i * chunk) for i in range(count)]


@lowers("Split", layout="any")
def split(ctx):
    x = ctx.input(0)
    axis = ctx.attr("axis", 0) % x.rank
    sizes = _split_sizes(ctx, x.shape[axis])
    tf_axis = x.perm.index(axis)
    fn = lambda t: tf.split(t, sizes, axis=tf_axis)  # noqa: E731
    if ctx.builder.edgetpu and len(set(sizes)) > 1:  # uneven: SPLIT_V, which has no Edge TPU kernel
        fn = lambda t: _slices(t, sizes, tf_axis)  # noqa: E731
    ctx.emit(fn, [ctx.tensor(0, x.perm)], x.perm)


def _slices(t, sizes, axis: int):
    """One SLICE per part (mapped on the Edge TPU)."""
    starts = np.cumsum([0, *sizes[:-1]])
    return [tf.slice(t, [int(start) if a == axis else 0 for a in range(t.shape.rank)],
                     [size if a == axis else int(t.shape[a]) for a in range(t.shape.rank)])
            for start, size in zip(starts, sizes)]


def _onnx_slice(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX Slice clamping rules, as a Python slice."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@lowers("Slice", layout="any")
def slice_(ctx):
    x = ctx.input(0)
    if ctx.opset >= 10:
        starts, ends = ctx.const(1, "starts"), ctx.const(2, "ends")
        axes = ctx.optional_const(3, "axes", range(len(starts)))
        steps = ctx.optional_const(4, "steps", [1] * len(starts))
    else:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes") or range(len(starts)), [1] * len(starts)
    slices = [slice(None)] * x.rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % x.rank
        slices[x.perm.index(axis)] = _onnx_slice(int(start), int(end), int(step), x.shape[axis])
    if x.const is not None:
        ctx.emit_constant(x.const[tuple(slices)])
        return
    ctx.emit(lambda t: t[tuple(slices)], [ctx.tensor(0, x.perm)], x.perm)


def _edge_pad(t, paddings):
    """One gather per padded axis, of the indices clamped to the edge."""
    for axis, (begin, end) in enumerate(paddings):
        if begin or end:
            size = t.shape[axis]
            t = tf.gather(t, np.clip(np.arange(-begin, size + end), 0, size - 1).astype(np.int32), axis=axis)
    return t


def _constant_pad(t, paddings, value: float):
    """A zero pad without a constant_values tensor: tf.pad then emits Pad, which converts to
    PAD (mapped on the Edge TPU); any constant_values tensor, even 0, makes PadV2 and PADV2,
    which has no Edge TPU kernel and ends the Edge TPU subgraph there."""
    if value == 0:
        return tf.pad(t, paddings)
    return tf.pad(t, paddings, constant_values=tf.cast(value, t.dtype))


@lowers("Pad", layout="any")
def pad(ctx):
    x = ctx.input(0)
    mode = ctx.attr("mode", "constant")
    if ctx.opset >= 11:
        pads = ctx.const(1, "pads")
        value = ctx.optional_const(2, "constant_value", 0)
        axes = ctx.optional_const(3, "axes", range(x.rank))
    else:
        pads, value, axes = ctx.attr("pads"), ctx.attr("value", 0.0), range(x.rank)
    axes = [int(a) % x.rank for a in axes]
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if min(pads) < 0:
        ctx.unsupported("negative pads (cropping) are not lowered", hint="Use Slice to crop.")
    onnx_pads = {a: (pads[i], pads[i + len(axes)]) for i, a in enumerate(axes)}
    paddings = [list(onnx_pads.get(a, (0, 0))) for a in x.perm]
    value = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
    if mode == "constant":
        fn = lambda t: _constant_pad(t, paddings, value)  # noqa: E731
    elif mode == "reflect":
        fn = lambda t: tf.pad(t, paddings, mode="REFLECT")  # noqa: E731
    elif mode == "edge":
        fn = lambda t: _edge_pad(t, paddings)  # noqa: E731
    else:
        ctx.unsupported(f"Pad mode {mode!r}")
    ctx.emit(fn, [ctx.tensor(0, x.perm)], x.perm)


@lowers("Gather", layout="any")
def gather(ctx):
    x = ctx.input(0)
    axis = ctx.attr("axis", 0) % x.rank
    indices = ctx.input(1).const
    if indices is not None and indices.ndim <= 1:
        indices = np.where(indices < 0, indices + x.shape[axis], indices).astype(np.int32)
        perm = without_axes(x.perm, [axis]) if indices.ndim == 0 else x.perm
        if x.const is not None:
            ctx.emit_constant(np.take(x.const, indices, axis))
            return
        ctx.emit(lambda t: tf.gather(t, indices, axis=x.perm.index(axis)), [ctx.tensor(0, x.perm)], perm)
        return
    ident = identity(x.rank)

    def run(t, i):
        # int32 index arithmetic: an int64 ADD is TFLite version 4, which edgetpu_compiler 16
        # cannot parse, and 32 bits hold any index of a tensor axis
        i = tf.cast(i, tf.int32)
        return tf.gather(t, tf.where(i < 0, i + x.shape[axis], i), axis=axis)

    ctx.emit(run, [ctx.tensor(0, ident), ctx.tensor(1, None)])
