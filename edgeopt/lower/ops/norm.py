"""BatchNormalization (when not folded into a conv), LayerNormalization, InstanceNormalization
and GroupNormalization: statistics over the ONNX axes, remapped to the TF layout."""

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
        mean, centred, inverse_std = _statistics(t, tf_axes, epsilon)
        y = centred * inverse_std * scale
        results = {0: y if bias is None else y + bias, 1: mean, 2: inverse_std}
        return [results[i] for i in outputs]

    if ctx.builder.edgetpu and outputs == [0] and tf_axes == [x.rank - 1]:
        run = _l2_layer_norm(x.shape[axis], epsilon, scale, bias)
    ctx.emit(run, [ctx.tensor(0, x.perm)], x.perm, outputs=outputs)


L2_FUSION_EPSILON = 9e-4  # TF 2.21 fuses l2_normalize into L2_NORMALIZATION for epsilon 9e-4, not 1e-3 (measured)


def _l2_layer_norm(channels: int, epsilon: float, scale, bias):
    """LayerNorm over the last axis as sqrt(C) * l2_normalize(x - mean): L2_NORMALIZATION has
    an Edge TPU kernel, RSQRT has none. The same but for how epsilon enters: LayerNorm divides
    by sqrt(mean(x^2) + epsilon), TFLite's kernel by max(norm, 1e-6) whatever epsilon the graph
    says, so the two differ only on nearly constant rows. The graph's epsilon (C * epsilon)
    is capped at what the converter still fuses: from 1e-3 on it leaves SQUARE, SUM, RSQRT, and
    SQUARE has no int8 kernel. The mean is added negated: a Sub would fuse with the square into
    SQUARED_DIFFERENCE and hide the L2 norm from the converter. int8 L2_NORMALIZATION has a
    fixed output step of 1/128, so wide layers lose resolution (sqrt(C)/128 after the scale)."""
    graph_epsilon = min(channels * epsilon, L2_FUSION_EPSILON)

    def run(t):
        centred = t + tf.reduce_mean(t, -1, keepdims=True) * -1.0
        y = tf.math.l2_normalize(centred, -1, epsilon=graph_epsilon) * (scale * np.sqrt(channels))
        return y if bias is None else y + bias
    return run


def _statistics(t, axes, epsilon: float):
    """(mean, t - mean, 1 / sqrt(variance + epsilon)) over `axes`.

    The variance is mean(centred * centred), not the SQUARED_DIFFERENCE(t, mean) the converter
    would fuse tf.square(centred) into: then `centred` feeds only the MUL by the inverse std,
    and the converter's int8 calibration gives it that MUL's (normalised) range, a step 30x
    too coarse after small embeddings (measured, TF 2.21: 0.2 dB SQNR after DistilBERT's
    first LayerNorm). A second reader keeps its own range. MUL also maps to the Edge TPU,
    SQUARED_DIFFERENCE does not.
    """
    mean = tf.reduce_mean(t, axes, keepdims=True)
    centred = t - mean
    return mean, centred, tf.math.rsqrt(tf.reduce_mean(centred * centred, axes, keepdims=True) + epsilon)


def _normalize(t, axes, epsilon: float):
    _, centred, inverse_std = _statistics(t, axes, epsilon)
    return centred * inverse_std


def _channel_affine(ctx, x, index: int, what: str, repeat: int = 1):
    """Input `index` (one value per channel, or per `repeat` channels) as a variable
    broadcast over x's layout."""
    channel_shape = (1, -1) + (1,) * (x.rank - 2)
    array = np.repeat(ctx.const(index, what), repeat).reshape(channel_shape).astype(np.float32)
    return ctx.variable(what, broadcast_const(array, x.rank, x.perm))


@lowers("InstanceNormalization", layout="nhwc")
def instance_norm(ctx):
    """Per sample and channel over the spatial axes (style transfer, MobileViTv2, PoolFormer's GroupNorm(1))."""
    x = ctx.input(0)
    epsilon = ctx.attr("epsilon", 1e-5)
    tf_axes = [x.perm.index(a) for a in range(2, x.rank)]
    scale, bias = _channel_affine(ctx, x, 1, "scale"), _channel_affine(ctx, x, 2, "bias")
    ctx.emit(lambda t: _normalize(t, tf_axes, epsilon) * scale + bias, [ctx.tensor(0, x.perm)], x.perm)


@lowers("GroupNormalization", layout="nhwc")
def group_norm(ctx):
    """Channels split into groups, each normalised over its channels and the spatial axes.
    Opset 18 gave scale and bias per group, opset 21 per channel."""
    x = ctx.input(0)
    groups, epsilon = ctx.attr("num_groups"), ctx.attr("epsilon", 1e-5)
    channels = x.shape[1]
    per_group = ctx.const(1, "scale").size == groups and groups != channels
    repeat = channels // groups if per_group else 1
    scale, bias = _channel_affine(ctx, x, 1, "scale", repeat), _channel_affine(ctx, x, 2, "bias", repeat)
    tf_shape = [x.shape[a] for a in x.perm]
    channel_axis = x.perm.index(1)
    if groups == 1:  # one group: over all but the batch, no 5-D reshape (which the Edge TPU does not map)
        ctx.emit(lambda t: _normalize(t, list(range(1, x.rank)), epsilon) * scale + bias, [ctx.tensor(0, x.perm)],
                 x.perm)
        return
    split = tf_shape[:channel_axis] + [groups, channels // groups] + tf_shape[channel_axis + 1:]
    axes = [a for a in range(len(split)) if a not in (0, channel_axis)]  # all but batch and group

    def run(t):
        return tf.reshape(_normalize(tf.reshape(t, split), axes, epsilon), tf_shape) * scale + bias

    ctx.emit(run, [ctx.tensor(0, x.perm)], x.perm)
