"""Comparisons, boolean logic, NaN/Inf tests and Where: the masking of attention nets.

Results are boolean tensors, which TFLite keeps exact in every quantization mode. They
broadcast like arithmetic (elementwise.broadcast_operands), so NHWC flows through. IsNaN
is `x != x` and IsInf compares with ±inf: TFLite has no builtin for either.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from edgeopt.lower._table import lowers
from edgeopt.lower.ops.elementwise import apply_preps, broadcast_operands

# op -> (TF function, numpy function for all-constant inputs); all binary but Where (ternary)
BROADCASTING = {"Equal": (tf.equal, np.equal), "Less": (tf.less, np.less), "Greater": (tf.greater, np.greater),
                "LessOrEqual": (tf.less_equal, np.less_equal), "GreaterOrEqual": (tf.greater_equal, np.greater_equal),
                "And": (tf.logical_and, np.logical_and), "Or": (tf.logical_or, np.logical_or),
                "Xor": (tf.math.logical_xor, np.logical_xor), "Where": (tf.where, np.where)}


def _emit_broadcast(ctx, fn) -> None:
    """fn over all inputs, broadcast to one rank and layout; constants stay constants."""
    keys, preps, perm = broadcast_operands(ctx, list(range(ctx.input_count)))
    present = [k for k in keys if k is not None]
    ctx.emit(lambda *ts: fn(*apply_preps(ts, preps)), present, perm)


def _constant_inputs(ctx) -> list[np.ndarray] | None:
    values = [ctx.input(i) for i in range(ctx.input_count)]
    return [v.const for v in values] if all(v.const is not None for v in values) else None


@lowers(*BROADCASTING, layout="any")
def broadcasting(ctx):
    tf_fn, numpy_fn = BROADCASTING[ctx.node.op_type]
    constants = _constant_inputs(ctx)
    if constants is not None:
        ctx.emit_constant(numpy_fn(*constants))
        return
    _emit_broadcast(ctx, tf_fn)


def _is_inf(ctx):
    detect_positive, detect_negative = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)

    def run(t):
        found = [tf.equal(t, np.inf)] if detect_positive else []
        found += [tf.equal(t, -np.inf)] if detect_negative else []
        return functools.reduce(tf.logical_or, found) if found else tf.zeros_like(t, tf.bool)
    return run


@lowers("Not", "IsNaN", "IsInf", layout="any")
def boolean_unary(ctx):
    x = ctx.input(0)
    fn = {"Not": tf.logical_not, "IsNaN": lambda t: tf.not_equal(t, t), "IsInf": None}[ctx.node.op_type]
    fn = fn or _is_inf(ctx)
    if x.const is not None:
        ctx.emit_constant(fn(tf.constant(x.const)).numpy())
        return
    ctx.emit(fn, [ctx.tensor(0, None, keep_order=True)], x.perm, orders=[x.order])
