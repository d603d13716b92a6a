"""Gemm and MatMul. A constant right-hand side becomes a [K, N] weight variable, so the
converter emits FULLY_CONNECTED; a Flatten of an NHWC tensor is absorbed by permuting its rows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._table import lowers


def _weight_rows(ctx, weight: np.ndarray) -> tuple[np.ndarray, str]:
    """The weight with rows in the TF order of input 0, and the key of input 0."""
    x = ctx.input(0)
    if x.order is not None:
        return weight[x.order], ctx.tensor(0, None, keep_order=True)
    return weight, ctx.tensor(0, tuple(range(x.rank)))


@lowers("Gemm")
def gemm(ctx):
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    trans_a, trans_b = ctx.attr("transA", 0), ctx.attr("transB", 0)
    c = ctx.input(2).const if ctx.has_input(2) else np.zeros((), np.float32)
    per_column = c is not None and (c.ndim < 2 or c.shape[0] == 1)
    if ctx.input(1).const is None or trans_a or not per_column:  # the general, run-time form
        keys = [ctx.tensor(i, None) for i in range(3) if ctx.has_input(i)]

        def run(a, b, c=None):
            y = alpha * tf.matmul(a, b, transpose_a=bool(trans_a), transpose_b=bool(trans_b))
            return y if c is None else y + beta * c

        ctx.emit(run, keys)
        return
    weight = ctx.const(1, "weight")
    weight = (alpha * (weight.T if trans_b else weight)).astype(np.float32)
    rows, key = _weight_rows(ctx, weight)
    kernel = ctx.variable("kernel", rows)
    bias = ctx.variable("bias", np.broadcast_to(beta * c, (1, weight.shape[1]))[0].astype(np.float32))
    ctx.emit(lambda x: tf.matmul(x, kernel) + bias, [key],
             params={"kernel": kernel, "bias": bias, "channels": weight.shape[1]})


@lowers("MatMul")
def matmul(ctx):
    a, b = ctx.input(0), ctx.input(1)
    if b.const is not None and b.rank == 2 and a.rank >= 2:
        rows, key = _weight_rows(ctx, b.const)
        kernel = ctx.variable("kernel", rows)
        fn = lambda x: tf.matmul(x, kernel)  # noqa: E731
        if ctx.builder.edgetpu and a.rank >= 3 and np.prod(a.shape[:-1]) > 1:
            fn = _pointwise_conv(a.shape, kernel)
        ctx.emit(fn, [key], params={"kernel": kernel, "channels": b.shape[1]})
        return

    shape = np.matmul(np.zeros(a.shape, np.float32), np.zeros(b.shape, np.float32)).shape
    (key_a, adjoint_a), (key_b, adjoint_b) = _matrix_operand(ctx, 0), _matrix_operand(ctx, 1)

    def run(x, y):  # numpy semantics: 1-D operands become a row/column and are dropped after
        out = tf.matmul(x[None] if a.rank == 1 else x, y[:, None] if b.rank == 1 else y,
                        adjoint_a=adjoint_a, adjoint_b=adjoint_b)
        return tf.reshape(out, shape)

    ctx.emit(run, [key_a, key_b])


def _pointwise_conv(shape, kernel):
    """Rows of tokens (or pixels) times a weight as a 1x1 CONV_2D over [1, 1, rows, K]: the Edge
    TPU maps FULLY_CONNECTED only with a 1-D output (one row)."""
    rows, out_shape = int(np.prod(shape[:-1])), [*shape[:-1], int(kernel.shape[1])]

    def run(x):
        y = tf.nn.conv2d(tf.reshape(x, [1, 1, rows, shape[-1]]), kernel[None, None], 1, "VALID")
        return tf.reshape(y, out_shape)
    return run


def _matrix_operand(ctx, i: int) -> tuple[str, bool]:
    """Operand i in ONNX order, or with its last two axes swapped (BATCH_MATMUL's adj_x/adj_y
    reads it transposed for free: attention's K^T)."""
    x = ctx.input(i)
    swapped = (*range(x.rank - 2), x.rank - 1, x.rank - 2)
    if x.rank >= 2 and x.const is None and x.order is None and x.perm == swapped:
        return ctx.tensor(i, swapped), True
    return ctx.tensor(i, tuple(range(x.rank))), False
