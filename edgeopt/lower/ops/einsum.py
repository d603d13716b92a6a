"""Einsum as the ops TFLite has: sums over letters only one operand has, then TRANSPOSE,
RESHAPE and one BATCH_MATMUL, then the output order.

The converter's own Einsum legalisation covers a few equations and leaves the rest as a
TF (Flex) op a device does not have; this covers every one- or two-operand equation
without repeated letters inside an operand (diagonals are refused).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower._table import lowers

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """(letters of each operand, letters of the output), the ellipsis spelled out as letters."""
    equation = equation.replace(" ", "")
    inputs, _, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation {equation!r} names {len(terms)} operands, the node has {len(ranks)}")
    spare = [c for c in LETTERS if c not in equation]
    ellipsis = max((rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks) if "..." in t), default=0)
    spelled = "".join(spare[:ellipsis])
    for i, (term, rank) in enumerate(zip(terms, ranks)):
        if "..." in term:
            term = term.replace("...", spelled[ellipsis - (rank - len(term) + 3):])
        terms[i] = term
    if "->" not in equation:  # implicit output: the ellipsis, then letters used once, sorted
        once = sorted(c for c in set("".join(terms)) if "".join(terms).count(c) == 1 and c not in spelled)
        output = spelled + "".join(once)
    return terms, output.replace("...", spelled)


def _sum_unshared(t, term: str, keep: str):
    """Sum over the letters of `term` not in `keep`."""
    axes = [i for i, c in enumerate(term) if c not in keep]
    return (tf.reduce_sum(t, axes) if axes else t), "".join(c for c in term if c in keep)


def _to(t, term: str, order: str):
    perm = [term.index(c) for c in order]
    return t if perm == sorted(perm) else tf.transpose(t, perm)


def contract(operands: list, terms: list[str], output: str):
    """The einsum of one or two tensors, each with the letters of its axes, as TFLite-native ops."""
    if len(operands) == 1:
        t, term = _sum_unshared(operands[0], terms[0], output)
        return _to(t, term, output)
    (a, b), (ta, tb) = operands, terms
    a, ta = _sum_unshared(a, ta, tb + output)
    b, tb = _sum_unshared(b, tb, ta + output)
    batch = "".join(c for c in output if c in ta and c in tb)
    left = "".join(c for c in output if c in ta and c not in tb)
    right = "".join(c for c in output if c in tb and c not in ta)
    summed = "".join(c for c in ta if c in tb and c not in output)
    size = {c: d for term, t in ((ta, a), (tb, b)) for c, d in zip(term, t.shape)}
    a, b = _to(a, ta, batch + left + summed), _to(b, tb, batch + summed + right)

    def prod(letters):
        return int(np.prod([size[c] for c in letters], dtype=np.int64))

    a = tf.reshape(a, [*a.shape[:len(batch)], prod(left), prod(summed)])
    b = tf.reshape(b, [*b.shape[:len(batch)], prod(summed), prod(right)])
    product = tf.matmul(a, b)
    product = tf.reshape(product, [*product.shape[:len(batch)], *(size[c] for c in left + right)])
    return _to(product, batch + left + right, output)


@lowers("Einsum")
def einsum(ctx):
    operands = [ctx.input(i) for i in range(ctx.input_count)]
    if len(operands) > 2:
        ctx.unsupported(f"{len(operands)} operands; split the Einsum into pairs in the source model")
    try:
        terms, output = parse(ctx.attr("equation"), [v.rank for v in operands])
    except ValueError as exc:
        ctx.unsupported(str(exc))
    repeated = [term for term in terms if len(set(term)) != len(term)]
    if repeated:
        ctx.unsupported(f"a repeated letter inside operand {repeated[0]!r} (a diagonal), which TFLite has no op for")
    if all(v.const is not None for v in operands):
        ctx.emit_constant(contract([tf.constant(v.const) for v in operands], terms, output).numpy())
        return
    # each operand as it is stored: its letters re-laid instead of its data (an NHWC map needs no TRANSPOSE)
    stored = ["".join(term[a] for a in v.perm) for term, v in zip(terms, operands)]
    keys = [ctx.tensor(i) for i in range(len(operands))]
    ctx.emit(lambda *ts: contract(list(ts), stored, output), keys)
