"""Activations with parameters, each written in the form the TFLite converter fuses into
one builtin (RELU6, LEAKY_RELU, HARD_SWISH, GELU) and that int8 kernels exist for; GELU for
the coral target in ops its compiler knows."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import broadcast_const
from edgeopt.lower._table import lowers


def _same_layout(ctx, fn):
    x = ctx.input(0)
    ctx.emit(fn, [ctx.tensor(0, None, keep_order=True)], x.perm, orders=[x.order])


def _bound(ctx, attribute: str, index: int):
    value = ctx.attr_or_input(attribute, index, attribute) if ctx.opset >= 11 else ctx.attr(attribute)
    return None if value is None else float(np.asarray(value).reshape(()))


@lowers("Clip", layout="any")
def clip(ctx):
    low, high = _bound(ctx, "min", 1), _bound(ctx, "max", 2)
    if low == 0.0 and high == 6.0:
        fn = tf.nn.relu6
    elif low == 0.0 and high is None:
        fn = tf.nn.relu
    else:
        dtype = ctx.input(0).dtype
        low = dtype.min if low is None else low
        high = dtype.max if high is None else high
        fn = lambda x: tf.minimum(tf.maximum(x, tf.cast(low, x.dtype)), tf.cast(high, x.dtype))  # noqa: E731
    _same_layout(ctx, fn)


@lowers("LeakyRelu", layout="any")
def leaky_relu(ctx):
    alpha = ctx.attr("alpha", 0.01)
    _same_layout(ctx, lambda x: tf.nn.leaky_relu(x, alpha))


@lowers("PRelu", layout="any")
def prelu(ctx):
    x = ctx.input(0)
    slope = broadcast_const(ctx.const(1, "slope"), x.rank, x.perm)
    keep = ctx.variable("keep", (1.0 - slope).astype(np.float32))
    slope = ctx.variable("slope", slope)
    # slope*x + (1-slope)*relu(x): each op keeps its own int8 range. The relu(-x) form puts a
    # float NEG into int8 models, and in max(x,0) + slope*min(x,0) the converter gives MINIMUM's
    # input its output range (TFLite int8 MINIMUM/MAXIMUM share one scale), clipping x at 0.
    ctx.emit(lambda t: slope * t + keep * tf.nn.relu(t), [ctx.tensor(0, x.perm)], x.perm)


def _hard_sigmoid(alpha: float, beta: float):
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5):
        return lambda x: tf.nn.relu6(x + 3.0) * (1 / 6)
    return lambda x: tf.clip_by_value(alpha * x + beta, 0.0, 1.0)


@lowers("HardSigmoid", layout="any")
def hard_sigmoid(ctx):
    _same_layout(ctx, _hard_sigmoid(ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)))


@lowers("HardSwish", layout="any")
def hard_swish(ctx):
    _same_layout(ctx, lambda x: x * tf.nn.relu6(x + 3.0) * (1 / 6))


# GELU's tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as x * sigmoid(2z)
_GELU_LINEAR = 2 * math.sqrt(2 / math.pi)
_GELU_CUBIC = _GELU_LINEAR * 0.044715
_GELU_CLIP = 5.0  # sigmoid(2z) at x = -5 is 4.6e-8: the cubic needs no larger x


def gelu_for_edgetpu(x):
    """GELU in ops edgetpu_compiler 16 maps (MINIMUM, MAXIMUM, MUL, ADD, LOGISTIC), for coral.

    The compiler cannot parse TFLite's GELU builtin at all (edgeopt/edgetpu/versions.py), so
    a model with one never compiles. This is the tanh form, rewritten with
    0.5 (1 + tanh z) = sigmoid(2 z), which the converter does not re-fuse into GELU. The
    cubic takes x clipped to [-5, 5]: without it the int8 range of 2z is x's range cubed,
    and a conv output spread over [-12, 12] lost 4 dB (30.6 against 34.8 dB for the GELU
    builtin in tests/backends/test_coral_gelu.py; 34.6 dB with the clip).
    Float cost against exact (erf) GELU: at most 4.74e-4 per value (at |x| = 2.7) for |x| up
    to 10^4 (the clip adds |x| 4.6e-8), where --edgetpu-fix's x * sigmoid(1.702 x) costs 0.021.
    """
    clipped = tf.clip_by_value(x, -_GELU_CLIP, _GELU_CLIP)
    return x * tf.sigmoid(clipped * (_GELU_LINEAR + _GELU_CUBIC * (clipped * clipped)))


@lowers("Gelu", layout="any")
def gelu(ctx):
    if ctx.builder.edgetpu:
        _same_layout(ctx, gelu_for_edgetpu)
        return
    approximate = ctx.attr("approximate", "none") == "tanh"
    _same_layout(ctx, lambda x: tf.nn.gelu(x, approximate=approximate))


@lowers("Elu", layout="any")
def elu(ctx):
    alpha = ctx.attr("alpha", 1.0)
    _same_layout(ctx, tf.nn.elu if alpha == 1.0 else lambda x: tf.where(x > 0, x, alpha * (tf.exp(x) - 1.0)))


def _softmax(ctx, fn):
    x = ctx.input(0)
    axis = ctx.attr("axis", -1 if ctx.opset >= 13 else 1) % x.rank
    if ctx.opset >= 13 or axis == x.rank - 1:
        ctx.emit(lambda t: fn(t, axis=x.perm.index(axis)), [ctx.tensor(0, x.perm)], x.perm)
        return
    # opset < 13 coerces the input to 2-D [prod(dims before axis), prod(dims from axis)]
    rows = int(np.prod(x.shape[:axis]))
    ctx.emit(lambda t: tf.reshape(fn(tf.reshape(t, [rows, -1]), axis=-1), x.shape),
             [ctx.tensor(0, tuple(range(x.rank)))])


@lowers("Softmax")
def softmax(ctx):
    _softmax(ctx, tf.nn.softmax)


@lowers("LogSoftmax")
def log_softmax(ctx):
    _softmax(ctx, tf.nn.log_softmax)
