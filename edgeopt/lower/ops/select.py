"""Index-selecting ops: ArgMax, ArgMin, TopK (classifier heads, detection post-processing).

Indices come out int64 as in ONNX. TFLite's ARG_MAX/ARG_MIN reduce any axis, so the input
keeps its layout; TOPK_V2 works on the last axis only, so the TopK axis is moved last in
the TF layout (free when it already is, as for a classifier's logits).
"""

from __future__ import annotations

import tensorflow as tf

from edgeopt.lower._layout import without_axes
from edgeopt.lower._table import lowers

ARG = {"ArgMax": tf.math.argmax, "ArgMin": tf.math.argmin}


@lowers(*ARG)
def arg_extreme(ctx):
    x = ctx.input(0)
    axis = int(ctx.attr("axis", 0)) % x.rank
    keepdims, last = bool(ctx.attr("keepdims", 1)), bool(ctx.attr("select_last_index", 0))
    tf_axis, size, fn = x.perm.index(axis), x.shape[axis], ARG[ctx.node.op_type]

    def select(t):
        if last:  # the last of equal values: search the reversed axis
            index = size - 1 - fn(tf.reverse(t, [tf_axis]), tf_axis, output_type=tf.int64)
        else:
            index = fn(t, tf_axis, output_type=tf.int64)
        return tf.expand_dims(index, tf_axis) if keepdims else index

    ctx.emit(select, [ctx.tensor(0, x.perm)], x.perm if keepdims else without_axes(x.perm, [axis]))


@lowers("TopK")
def top_k(ctx):
    x = ctx.input(0)
    axis = int(ctx.attr("axis", -1)) % x.rank
    k = int(ctx.const(1, "K").reshape(-1)[0])
    largest = bool(ctx.attr("largest", 1))  # `sorted` = 0 allows any order; sorted is one
    perm = tuple(a for a in x.perm if a != axis) + (axis,)

    def select(t):
        values, indices = tf.math.top_k(t if largest else -t, k)
        return (values if largest else -values), tf.cast(indices, tf.int64)

    ctx.emit(select, [ctx.tensor(0, perm)], perm)
