"""Elementwise ops: a declarative table of unary functions, and broadcasting binary ops.

Elementwise ops keep their input's layout, so NHWC flows through them; a constant operand
is broadcast ONNX-style and re-laid to match.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import broadcast_const, identity
from edgeopt.lower._table import lowers

# Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): TFLite has no ERF builtin, so erf is built
# from ops every TFLite runtime has.
_ERF_P = 0.3275911
_ERF_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def erf(x):
    t = 1.0 / (1.0 + _ERF_P * tf.abs(x))
    poly = _ERF_A[0]
    for a in _ERF_A[1:]:
        poly = poly * t + a
    return tf.sign(x) * (1.0 - poly * t * tf.exp(-x * x))


def softplus(x):
    """log(1 + e^x) without overflow: max(x, 0) + log(1 + e^-|x|) (TFLite has no SOFTPLUS)."""
    return tf.nn.relu(x) + tf.math.log(1.0 + tf.exp(-tf.abs(x)))


UNARY = {
    "Relu": tf.nn.relu,
    "Sigmoid": tf.sigmoid,
    "Tanh": tf.tanh,
    "Sqrt": tf.sqrt,
    "Exp": tf.exp,
    "Log": tf.math.log,
    "Neg": tf.negative,
    "Abs": tf.abs,
    "Reciprocal": tf.math.reciprocal,
    "Floor": tf.floor,
    "Ceil": tf.math.ceil,
    "Erf": erf,
    "Identity": tf.identity,
    "Cos": tf.cos,
    "Sin": tf.sin,
    "Sign": tf.sign,
    "Round": tf.round,  # half to even, as ONNX
    "Softplus": softplus,
    "Softsign": lambda x: x / (1.0 + tf.abs(x)),
    "Mish": lambda x: x * tf.tanh(softplus(x)),
}


@lowers(*UNARY, layout="any")
def unary(ctx):
    x = ctx.input(0)
    if ctx.node.op_type == "Identity":
        ctx.alias(x)
        return
    fn = UNARY[ctx.node.op_type]
    ctx.emit(fn, [ctx.tensor(0, None, keep_order=True)], x.perm, orders=[x.order])


def _truncating_divide(x, y):
    return tf.truncatediv(x, y) if x.dtype.is_integer else tf.math.divide(x, y)


def _power(x, y):
    if x.dtype == y.dtype:
        return tf.pow(x, y)
    return tf.cast(tf.pow(tf.cast(x, tf.float64), tf.cast(y, tf.float64)), x.dtype)  # ONNX: the base's type


def _mod(x, y):
    """ONNX Mod (fmod=0): the remainder takes the divisor's sign, like Python's %."""
    return tf.math.floormod(x, y)


def _fmod(x, y):
    """ONNX Mod with fmod=1: the remainder takes the dividend's sign, like C's fmod."""
    return tf.truncatemod(x, y) if x.dtype.is_integer else x - y * _truncate(x / y)


def _truncate(x):
    return tf.sign(x) * tf.floor(tf.abs(x))


BINARY = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Div": _truncating_divide, "Pow": _power,
          "Mod": _mod,
          "Max": tf.maximum, "Min": tf.minimum, "Sum": tf.add}  # the last three are variadic: folded pairwise


def broadcast_operands(ctx, indices):
    """Keys of the inputs broadcast to one rank and layout, plus that layout.

    The layout is the first non-identity one among full-rank run-time inputs, so NHWC wins.
    """
    values = [ctx.input(i) for i in indices]
    rank = max(v.rank for v in values)
    full = [v for v in values if v.const is None and v.rank == rank]
    perm = next((v.perm for v in full if v.perm != identity(rank)), identity(rank))
    keys, preps = [], []
    for i, v in zip(indices, values):
        if v.const is not None:
            array = broadcast_const(v.const, rank, perm)
            float_weights = array.dtype.kind == "f" and array.size > 1
            keys.append(ctx.constant(array) if not float_weights else None)
            preps.append(ctx.variable(f"operand{i}", array) if float_weights else None)
        elif v.rank == rank:
            keys.append(ctx.tensor(i, perm))
            preps.append(None)
        else:  # a lower-rank run-time operand: reshape to the full rank, then re-lay
            shape = (1,) * (rank - v.rank) + v.shape
            keys.append(ctx.tensor(i, identity(v.rank)))
            preps.append(lambda t, shape=shape: tf.transpose(tf.reshape(t, shape), perm))
    return keys, preps, perm


def apply_preps(tensors, preps):
    """Feed run-time tensors through their reshape, and slot the variables in."""
    tensors = iter(tensors)
    out = []
    for prep in preps:
        if isinstance(prep, tf.Variable):
            out.append(prep)
        else:
            t = next(tensors)
            out.append(prep(t) if prep else t)
    return out


@lowers(*BINARY, layout="any")
def binary(ctx):
    exponent = ctx.input(1).const if ctx.node.op_type == "Pow" else None
    if exponent is not None and exponent.size == 1 and float(exponent.reshape(())) in (1.0, 2.0, 0.5):
        x, power = ctx.input(0), float(exponent.reshape(()))
        fn = {1.0: tf.identity, 2.0: lambda t: t * t, 0.5: tf.sqrt}[power]
        if x.rank >= exponent.ndim:  # the exponent does not broadcast x up
            ctx.emit(fn, [ctx.tensor(0, None, keep_order=True)], x.perm, orders=[x.order])
            return
    keys, preps, perm = broadcast_operands(ctx, list(range(ctx.input_count)))
    fn = BINARY[ctx.node.op_type]
    if ctx.node.op_type == "Mod":
        fn = _fmod if ctx.attr("fmod", 0) else _mod
    present = [k for k in keys if k is not None]
    ctx.emit(lambda *ts: functools.reduce(fn, apply_preps(ts, preps)), present, perm)
