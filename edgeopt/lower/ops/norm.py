"""BatchNormalization (when not folded into a conv) and LayerNormalization."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import broadcast_const
from edgeopt.lower._table import lowers


@lowers("BatchNormalization", layout="nhwc")
def batch_norm(ctx):
    x = ctx.input(0)
    if ctx.attr("training_mode", 0) or ctx.output_used(1) or ctx.output_used(2):
        ctx.unsupported("training-mode BatchNormalization", hint="Export the model in eval mode (model.eval()).")
    scale, bias, mean, var = (ctx.const(i, what) for i, what in enumerate(("scale", "bias", "mean", "var"), 1))
    factor = scale / np.sqrt(var + ctx.attr("epsilon", 1e-5))
    channel_shape = (1, -1) + (1,) * (x.rank - 2)
    mul = ctx.variable("scale", broadcast_const(factor.reshape(channel_shape), x.rank, x.perm).astype(np.float32))
    add = ctx.variable("bias", broadcast_const((bias - mean * factor).reshape(channel_shape), x.rank, x.perm)
                       .astype(np.float32))
    ctx.emit(lambda t: t * mul + add, [ctx.tensor(0, x.perm)], x.perm, outputs=[0])


@lowers("LayerNormalization", layout="any")
def layer_norm(ctx):
    x = ctx.input(0)
    axis = ctx.attr("axis", -1) % x.rank
    epsilon = ctx.attr("epsilon", 1e-5)
    tf_axes = [x.perm.index(a) for a in range(axis, x.rank)]
    scale = ctx.variable("scale", broadcast_const(ctx.const(1, "scale"), x.rank, x.perm).astype(np.float32))
    bias_array = ctx.optional_const(2, "bias")
    bias = None if bias_array is None else ctx.variable("bias", broadcast_const(bias_array, x.rank, x.perm)
                                                          .astype(np.float32))
    outputs = [i for i in range(3) if i == 0 or ctx.output_used(i)]

    def run(t):
        mean = tf.reduce_mean(t, tf_axes, keepdims=True)
        centred = t - mean
        inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), tf_axes, keepdims=True) + epsilon)
        y = centred * inverse_std * scale
        results = {0: y if bias is None else y + bias, 1: mean, 2: inverse_std}
        return [results[i] for i in outputs]

    ctx.emit(run, [ctx.tensor(0, x.perm)], x.perm, outputs=outputs)
