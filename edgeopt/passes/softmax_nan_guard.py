"""drop-softmax-nan-guard: `Where(IsNaN(s), c, s)` after a Softmax goes when s cannot be NaN.

The dynamo exporter writes this guard after the Softmax of every scaled-dot-product
attention, for rows whose every score is masked to -inf. IsNaN lowers to NOT_EQUAL(x, x),
which the int8 converter cannot quantize (and an int8 tensor holds no NaN anyway). torch's
own decomposition of the attention writes `Where(Not(Any(scores != -inf)), 0, s)` instead
(NOT_EQUAL on float scores again), which goes on the same proof: finite scores are never -inf.

Why removing it is safe: Softmax (max-subtracted) of a row of finite values is finite, so
its output is NaN only when its input row holds a NaN or an infinity. Graph inputs are
finite (edgeopt's data loader refuses NaN/inf in calibration and evaluation data), so a
non-finite value must come from a non-finite constant, or from an op that can make one of
finite operands (Log(0), Div by zero, Sqrt(-1), Exp overflow, ...). The pass walks the
Softmax input's whole cone and removes the guard only when every constant in it is finite
and every op is one that maps finite to finite (`FINITE_OPS`; normalisations only with an
epsilon > 0, Div only by a constant with no zero). Float overflow of finite arithmetic (sums
past 3.4e38) is assumed away: an activation that large has already broken the model. The
attention mask of transformers is the finite -3.4e38 (torch.finfo.min) added to the scores,
which passes; a mask of -inf keeps the guard, as does any cone with an unknown op.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import constant_array, is_onnx_op, remove_unused_initializers, replace_value
from edgeopt.passes.base import Pass, register

# Ops whose float outputs are finite whenever their inputs are (overflow aside). Ops with only
# boolean or integer outputs (comparisons, logic, Shape, ArgMax) need no entry: such values are finite.
FINITE_OPS = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat", "Conv", "Cos", "CumSum",
    "DepthToSpace", "Dropout", "Einsum", "Erf", "Expand", "Flatten", "Floor", "Gather", "GatherElements", "GatherND",
    "Gelu", "Gemm", "HardSigmoid", "HardSwish", "Identity", "LayerNormalization", "LeakyRelu", "MatMul", "Max",
    "MaxPool", "Min", "Mul", "Neg", "Pad", "PRelu", "Range", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum",
    "Relu", "Reshape", "Round", "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Tanh",
    "Tile", "Transpose", "Unsqueeze", "Where",
})


# torch's own decomposition of scaled_dot_product_attention (Swin, after run_decompositions)
# guards fully masked rows instead: Not(Any(Not(scores == -inf))), Any as Cast-ReduceMax-Cast
ALL_MASKED_TEST = ("Not", "Cast", "ReduceMax", "Cast", "Not", "Equal")


def _all_masked_test(condition: ir.Value, scores: ir.Value) -> bool:
    """`condition` is True only on rows whose every score is -inf: never, for finite scores."""
    value, node = condition, None
    for op_type in ALL_MASKED_TEST:
        node = value.producer() if value is not None else None
        if node is None or not is_onnx_op(node, op_type):
            return False
        value = node.inputs[0]
    minus_inf = constant_array(node.inputs[1])
    return value is scores and minus_inf is not None and minus_inf.size == 1 and bool(np.isneginf(minus_inf).all())


def _guarded_softmax(node: ir.Node) -> ir.Value | None:
    """The Softmax output `s` when `node` is Where(IsNaN(s), constant, s), or the all-masked
    form of the guard, and its output is shaped like s."""
    if not is_onnx_op(node, "Where") or len(node.inputs) != 3:
        return None
    condition, fill, kept = node.inputs
    source = kept.producer() if kept is not None else None
    if source is None or not is_onnx_op(source, "Softmax") or constant_array(fill) is None:
        return None
    test = condition.producer() if condition is not None else None
    is_nan = test is not None and is_onnx_op(test, "IsNaN") and test.inputs[0] is kept
    if not (is_nan or _all_masked_test(condition, source.inputs[0])):
        return None
    if kept.shape is None or node.outputs[0].shape is None or list(kept.shape) != list(node.outputs[0].shape):
        return None
    return kept


def _finite_constant(value: ir.Value) -> bool:
    array = constant_array(value)
    return array is not None and (not np.issubdtype(array.dtype, np.floating) or bool(np.isfinite(array).all()))


def _finite_node(node: ir.Node) -> bool:
    """The node maps finite inputs to finite outputs (its own inputs are checked by the caller)."""
    if node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Div":
        divisor = constant_array(node.inputs[1])
        return divisor is not None and bool(np.all(divisor != 0))
    if node.op_type in ("LayerNormalization", "BatchNormalization"):  # 0 / sqrt(0 + 0) on a constant row
        return node.attributes.get_float("epsilon", 1e-5) > 0
    if node.op_type == "ConstantOfShape":
        value = node.attributes.get("value")
        return value is None or bool(np.isfinite(value.as_tensor().numpy()).all())
    return node.op_type in FINITE_OPS


class _FiniteCone:
    """Answers "is this value provably finite?", remembering values already proven."""

    def __init__(self):
        self.proven: set[int] = set()

    def finite(self, root: ir.Value) -> bool:
        stack, seen = [root], set()
        while stack:
            value = stack.pop()
            if id(value) in self.proven or id(value) in seen:
                continue
            seen.add(id(value))
            if value.dtype is not None and not value.dtype.is_floating_point():
                continue  # integers and booleans are finite whatever made them
            producer = value.producer()
            if producer is None:
                if not (value.is_graph_input() or _finite_constant(value)):
                    return False
                continue
            if not _finite_node(producer):
                return False
            stack.extend(v for v in producer.inputs if v is not None)
        self.proven |= seen
        return True


def _remove_dead_chain(graph: ir.Graph, value: ir.Value) -> list[ir.Value]:
    """Remove the guard's test, producer by producer along first inputs, while nothing else
    reads it; returns the other inputs of what went (constants to drop if now unused)."""
    dropped = []
    node = value.producer()
    while node is not None and not any(o.uses() or o.is_graph_output() for o in node.outputs):
        first, *others = node.inputs  # read before removing: removal detaches them
        dropped.extend(v for v in others if v is not None)
        graph.remove(node, safe=True)
        node = first.producer() if first is not None else None
    return dropped


@register
class DropSoftmaxNanGuard(Pass):
    name = "drop-softmax-nan-guard"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph, cone = model.graph, _FiniteCone()
        changes = []
        for node in list(graph):
            kept = _guarded_softmax(node)
            if kept is None or not cone.finite(kept.producer().inputs[0]):
                continue
            condition, fill = node.inputs[0], node.inputs[1]
            if not replace_value(node.outputs[0], kept):
                continue
            graph.remove(node, safe=True)
            constants = [fill, *_remove_dead_chain(graph, condition)]
            remove_unused_initializers(graph, constants)
            changes.append(f"Where node '{node.name}' guards Softmax '{kept.producer().name}' against NaN, "
                           "which its finite input cone cannot make -> removed")
        return changes
