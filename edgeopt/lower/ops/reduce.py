"""Reductions over any axes: the axes are remapped to the TF layout, which is kept."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import without_axes
from edgeopt.lower._table import lowers

REDUCE = {"ReduceMean": tf.reduce_mean, "ReduceMax": tf.reduce_max, "ReduceMin": tf.reduce_min,
          "ReduceSum": tf.reduce_sum, "ReduceProd": tf.reduce_prod,
          # norms (ConvNeXtV2's global response norm is a ReduceL2 over the map) and log-sums
          "ReduceL1": lambda t, axes, keepdims: tf.reduce_sum(tf.abs(t), axes, keepdims=keepdims),
          "ReduceL2": lambda t, axes, keepdims: tf.sqrt(tf.reduce_sum(t * t, axes, keepdims=keepdims)),
          "ReduceSumSquare": lambda t, axes, keepdims: tf.reduce_sum(t * t, axes, keepdims=keepdims),
          "ReduceLogSum": lambda t, axes, keepdims: tf.math.log(tf.reduce_sum(t, axes, keepdims=keepdims)),
          "ReduceLogSumExp": tf.reduce_logsumexp}
BOOLEAN = {"ReduceMax": tf.reduce_any, "ReduceMin": tf.reduce_all}
AXES_BECAME_INPUT = {"ReduceSum": 13}  # the others moved `axes` to an input at opset 18


@lowers(*REDUCE)
def reduce(ctx):
    x = ctx.input(0)
    if ctx.opset >= AXES_BECAME_INPUT.get(ctx.node.op_type, 18):
        axes = ctx.optional_const(1, "axes")
    else:
        axes = ctx.attr("axes")
    keepdims = bool(ctx.attr("keepdims", 1))
    if axes is None or len(axes) == 0:
        if ctx.attr("noop_with_empty_axes", 0):
            ctx.alias(x)
            return
        axes = range(x.rank)
    axes = sorted({int(a) % x.rank for a in np.asarray(axes).reshape(-1)})
    tf_axes = [x.perm.index(a) for a in axes]
    fn = REDUCE[ctx.node.op_type]
    if x.dtype == tf.bool:
        fn = BOOLEAN.get(ctx.node.op_type) or ctx.unsupported("a boolean input")
    out_perm = x.perm if keepdims else without_axes(x.perm, axes)
    ctx.emit(lambda t: fn(t, tf_axes, keepdims=keepdims), [ctx.tensor(0, x.perm)], out_perm)
