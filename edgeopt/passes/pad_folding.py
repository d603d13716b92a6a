"""fold-pads: a zero Pad of H and W in front of a Conv, or of a MaxPool where it is exact,
becomes that op's own padding.

Keras' ZeroPadding2D and torch's ZeroPad2d export as a Pad node before the conv or pool.
A separate PAD costs a copy of the activation on every target, and a pool has no padding
the TFLite converter would merge it into. Folded, the lowering sees one window op whose
pads TF expresses as "SAME" or "VALID" where they match, so no pad op remains; pads TF
cannot express still become a single zero PAD (mapped on the Edge TPU).

A Conv pads with zeros, so folding into it is always exact. A MaxPool ignores its padding
(as if -inf), so a zero pad folds into it only when the input is known non-negative (it
comes out of a ReLU, or a Clip at 0 or above) and the merged pads are those of SAME_UPPER,
which TFLite's MAX_POOL_2D runs as "SAME"; any other pads would need a PAD anyway.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import constant_array, is_onnx_op, remove_unused_initializers
from edgeopt.passes.base import Pass, register


def _full_pads(node: ir.Node, rank: int) -> np.ndarray | None:
    """The Pad's (begins..., ends...) over every axis, when they are build-time constants."""
    if len(node.inputs) > 1:
        pads = constant_array(node.inputs[1])
        axes = constant_array(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
    else:  # before opset 11 the pads are an attribute
        pads, axes = np.array(node.attributes.get_ints("pads", ())), None
    if pads is None or (len(node.inputs) > 3 and node.inputs[3] is not None and axes is None):
        return None
    axes = np.arange(rank) if axes is None else np.asarray(axes) % rank
    full = np.zeros(2 * rank, np.int64)
    full[axes], full[axes + rank] = pads[:len(axes)], pads[len(axes):]
    return full


def _pad_value(node: ir.Node) -> float | None:
    """The constant the Pad writes (0 when omitted), or None when it is computed at run time."""
    if len(node.inputs) < 3 or node.inputs[2] is None or not node.inputs[2].name:
        return node.attributes.get_float("value", 0.0)
    value = constant_array(node.inputs[2])
    if value is None:
        return None
    return float(value.reshape(-1)[0]) if value.size else 0.0


def _spatial_zero_pads(node: ir.Node) -> list[int] | None:
    """[top, left, bottom, right] of a Pad that adds zeros to H and W of an NCHW tensor only."""
    if not is_onnx_op(node, "Pad") or node.attributes.get_string("mode", "constant") != "constant":
        return None
    shape = node.inputs[0].shape
    if shape is None or len(shape) != 4:
        return None
    full = _full_pads(node, 4)
    if full is None or _pad_value(node) != 0.0 or full.min() < 0 or full[[0, 1, 4, 5]].any():
        return None
    return [int(p) for p in full[[2, 3, 6, 7]]]


def _non_negative(value: ir.Value) -> bool:
    producer = value.producer()
    if producer is None:
        return False
    if is_onnx_op(producer, "Relu"):
        return True
    if is_onnx_op(producer, "Clip") and len(producer.inputs) > 1:
        low = constant_array(producer.inputs[1])
        return low is not None and float(low) >= 0
    return False


def _same_upper(sizes, kernel, strides, dilations) -> list[int]:
    """ONNX SAME_UPPER pads (TF's "SAME"), [begins..., ends...]."""
    totals = [max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
              for n, k, s, d in zip(sizes, kernel, strides, dilations)]
    return [t // 2 for t in totals] + [t - t // 2 for t in totals]


def _own_pads(node: ir.Node) -> list[int] | None:
    """The window op's explicit pads, or None when auto_pad computes them."""
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    return list(node.attributes.get_ints("pads", (0, 0, 0, 0))) if auto_pad == "NOTSET" else None


def _merged(consumer: ir.Node, pad: ir.Node, pads: list[int]) -> list[int] | None:
    """The consumer's pads with the Pad's added, when folding them in is exact."""
    own = _own_pads(consumer)
    if own is None or consumer.inputs[0] is not pad.outputs[0]:
        return None
    merged = [a + b for a, b in zip(own, pads)]
    if is_onnx_op(consumer, "Conv") or (is_onnx_op(consumer, "MaxPool") and _max_pool_takes(consumer, pad, merged)):
        return merged
    return None


def _max_pool_takes(pool: ir.Node, pad: ir.Node, merged: list[int]) -> bool:
    """Zeros never beat a non-negative input, and SAME_UPPER pads leave no window all padding."""
    shape = pad.inputs[0].shape
    if len(pool.outputs) > 1 or pool.attributes.get_int("ceil_mode", 0) or not shape.is_static():
        return False
    kernel = list(pool.attributes.get_ints("kernel_shape"))
    strides = list(pool.attributes.get_ints("strides", (1, 1)))
    dilations = list(pool.attributes.get_ints("dilations", (1, 1)))
    same = _same_upper([int(d) for d in shape[2:]], kernel, strides, dilations)
    return _non_negative(pad.inputs[0]) and merged == same


@register
class FoldPads(Pass):
    name = "fold-pads"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        changes = []
        for pad in list(graph):
            pads = _spatial_zero_pads(pad)
            if pads is None or pad.outputs[0].is_graph_output():
                continue
            for consumer in dict.fromkeys(use.node for use in pad.outputs[0].uses()):  # in order: reproducible
                merged = _merged(consumer, pad, pads)
                if merged is None:
                    continue
                consumer.attributes["pads"] = ir.AttrInt64s("pads", merged)
                consumer.attributes["auto_pad"] = ir.AttrString("auto_pad", "NOTSET")
                consumer.replace_input_with(0, pad.inputs[0])
                changes.append(f"Pad node '{pad.name}' {pads} folded into {consumer.op_type} node "
                               f"'{consumer.name}' (pads {merged})")
            if not pad.outputs[0].uses():
                inputs = list(pad.inputs)
                graph.remove(pad, safe=True)
                remove_unused_initializers(graph, inputs)
        return changes
