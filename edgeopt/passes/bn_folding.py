"""fold-batchnorm: merge an inference BatchNormalization into the Conv or Gemm feeding it.

At inference BN is a per-channel affine map y = x * s + t with s = scale / sqrt(var + eps)
and t = beta - mean * s, so scaling the producer's weights per output channel by s and
its bias to b * s + t gives the same result with one op (and its memory traffic) fewer.
A BN with no such producer is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import (add_initializer, constant_array, is_onnx_op, remove_unused_initializers,
                                     replace_value)
from edgeopt.passes.base import Pass, register


def _bn_affine(bn: ir.Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, t) of a BN in inference form (one output) with constant parameters."""
    if len(bn.outputs) != 1 or bn.attributes.get_int("training_mode", 0):
        return None
    params = [constant_array(value) for value in bn.inputs[1:]]
    if len(params) != 4 or any(p is None or p.ndim != 1 for p in params):
        return None
    scale, beta, mean, var = (p.astype(np.float64) for p in params)
    s = scale / np.sqrt(var + bn.attributes.get_float("epsilon", 1e-5))
    return s, beta - mean * s


def _output_channel_axis(producer: ir.Node) -> int | None:
    """Axis of the producer's weight that indexes output channels; None if it cannot take the fold."""
    if is_onnx_op(producer, "Conv"):
        return 0  # [M, C/group, k...], whatever the rank or group count
    if is_onnx_op(producer, "Gemm"):
        return 0 if producer.attributes.get_int("transB", 0) else 1  # B is [N, K] or [K, N]
    return None


def _bias_input(producer: ir.Node) -> ir.Value | None:
    """Conv's B or Gemm's C: both optional, both the third input."""
    return producer.inputs[2] if len(producer.inputs) > 2 else None


def _set_constant_input(node: ir.Node, index: int, array: np.ndarray, name_base: str) -> None:
    value = add_initializer(node.graph, array, name_base)
    if len(node.inputs) <= index:
        node.resize_inputs(index + 1)
    node.replace_input_with(index, value)


def _foldable_producer(bn: ir.Node) -> tuple[ir.Node, int, np.ndarray, np.ndarray] | None:
    """(producer, its weight's output-channel axis, s, t) when `bn` can fold into its producer."""
    if not is_onnx_op(bn, "BatchNormalization"):
        return None
    x = bn.inputs[0]
    producer = x.producer()
    # The producer's output must feed only this BN, or other readers would see scaled values.
    if producer is None or len(x.uses()) != 1 or x.is_graph_output():
        return None
    axis, affine = _output_channel_axis(producer), _bn_affine(bn)
    if axis is None or affine is None:
        return None
    weight, bias = constant_array(producer.inputs[1]), _bias_input(producer)
    if weight is None or weight.dtype.kind != "f" or weight.shape[axis] != affine[0].size:
        return None
    if bias is not None and constant_array(bias) is None:
        return None
    return producer, axis, *affine


def _fold(graph: ir.Graph, bn: ir.Node, producer: ir.Node, axis: int, s: np.ndarray, t: np.ndarray) -> None:
    old_weight, old_bias = producer.inputs[1], _bias_input(producer)
    w = constant_array(old_weight)
    b = constant_array(old_bias) if old_bias is not None else np.zeros(1)
    # Gemm computes alpha * A @ B + beta * C: alpha stays with the scaled B, beta moves into C.
    bias_coefficient = producer.attributes.get_float("beta", 1.0) if producer.op_type == "Gemm" else 1.0
    channel_shape = [1] * w.ndim
    channel_shape[axis] = -1
    _set_constant_input(producer, 1, (w * s.reshape(channel_shape)).astype(w.dtype), f"{producer.name}.weight")
    _set_constant_input(producer, 2, (bias_coefficient * b * s + t).astype(w.dtype), f"{producer.name}.bias")
    if producer.op_type == "Gemm":
        producer.attributes["beta"] = ir.AttrFloat32("beta", 1.0)

    bn_params = list(bn.inputs[1:])
    replace_value(bn.outputs[0], producer.outputs[0], take_name=True)  # x is private to bn: cannot refuse
    graph.remove(bn, safe=True)
    remove_unused_initializers(graph, [old_weight, old_bias, *bn_params])


@register
class FoldBatchNorm(Pass):
    name = "fold-batchnorm"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        changes = []
        for bn in list(model.graph):
            match = _foldable_producer(bn)
            if match is None:
                continue
            producer = match[0]
            _fold(model.graph, bn, *match)
            changes.append(f"folded BatchNormalization node '{bn.name}' into {producer.op_type} '{producer.name}'")
        return changes
