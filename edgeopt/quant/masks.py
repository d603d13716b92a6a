"""int8 ranges for additive attention masks: `scores + Where(keep, 0, -3.4e38)` before a Softmax.

Transformers mask padded tokens by adding torch.finfo.min (or -1e4) to their attention
scores. Calibrated min/max puts that value inside the int8 range of the bias and of the
sum, so one step is 1e36 wide and every real score rounds to the same level: attention
turns uniform. In int8 the mask only has to push a masked score far enough below every
kept one that Softmax gives it no weight, so the two tensors get their own ranges:

- the sum: the kept scores' calibrated [low, high], widened below by MARGIN;
- the bias: [low - high - MARGIN, 0], so a masked score clamps to at most low - MARGIN.

MARGIN = ln(512 n) for n positions per Softmax row: the n masked weights together stay
under half an int8 output step (1/512), so the kept probabilities do not shift. The mask
logic itself (Cast, And, Where on booleans) stays boolean, exact. Float models are not
touched: these are fake-quant ranges, used by the int8 converter only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from edgeopt.lower import LoweredModel
from edgeopt.passes._rewrite import constant_array, is_onnx_op

MASK_FILL = -1e4  # at or below this, an added constant is a mask (HF used -1e4, now finfo.min)


def _mask_bias(value: ir.Value) -> float | None:
    """The fill when `value` is Where(condition, 0, fill) with fill a large negative constant."""
    node = value.producer()
    if node is None or not is_onnx_op(node, "Where"):
        return None
    kept, fill = constant_array(node.inputs[1]), constant_array(node.inputs[2])
    if kept is None or fill is None or np.any(kept != 0) or fill.size == 0 or np.any(fill > MASK_FILL):
        return None
    return float(fill.max())


def masked_sums(graph: ir.Graph) -> list[tuple[str, str, int, float]]:
    """(bias value, sum value, Softmax row length, fill) for each masked Add feeding a Softmax."""
    found = []
    for node in graph:
        if not is_onnx_op(node, "Add") or len(node.inputs) != 2:
            continue
        softmax = next((use for use, _ in node.outputs[0].uses() if is_onnx_op(use, "Softmax")), None)
        biases = [v for v in node.inputs if v is not None and _mask_bias(v) is not None]
        shape = node.outputs[0].shape
        if softmax is None or len(biases) != 1 or shape is None or not shape.is_static():
            continue
        axis = softmax.attributes.get_int("axis", -1)
        found.append((biases[0].name, node.outputs[0].name, int(shape[axis]), _mask_bias(biases[0])))
    return found


def _keys(lowered: LoweredModel) -> dict[str, str]:
    """ONNX value name -> the lowered step's output key holding it (synthetic steps, "Transpose*"
    and the like, hold copies under other names)."""
    return {key.split(":", 1)[1]: key for step in lowered.steps if not step.op_type.endswith("*")
            for key in step.outputs}


def _kept_ranges(lowered: LoweredModel, feeds: Iterable[dict], taps: list[tuple[str, float]]) -> list[tuple[float, float]]:
    """min/max of each masked sum (key, fill) over the calibration data, masked positions left
    out, 0 included."""
    function = lowered.function(taps=[key for key, _ in taps])
    bounds = [(0.0, 0.0)] * len(taps)
    for feed in feeds:
        results = function(*(tf.constant(x) for x in lowered.tf_arrays(feed)))
        for i, (_, fill) in enumerate(taps):
            sums = results[f"tap{i}"].numpy()
            kept = sums[sums > fill / 2]
            if kept.size:
                bounds[i] = (min(bounds[i][0], float(kept.min())), max(bounds[i][1], float(kept.max())))
    return bounds


def mask_ranges(model: ir.Model, lowered: LoweredModel, feeds: Iterable[dict]) -> dict[str, tuple[float, float]]:
    """Fake-quant ranges (tensor key -> (low, high)) for every masked attention sum and its bias;
    a bias shared by several layers gets the widest."""
    keys = _keys(lowered)
    found = [(keys[bias], keys[total], row, fill) for bias, total, row, fill in masked_sums(model.graph)
             if bias in keys and total in keys]
    if not found:
        return {}
    kept = _kept_ranges(lowered, feeds, [(total, fill) for _, total, _, fill in found])
    ranges = {}
    for (bias, total, row, _), (low, high) in zip(found, kept):
        margin = math.log(512 * row)
        ranges[total] = (low - margin, high)
        ranges[bias] = (min(low - high - margin, ranges.get(bias, (0.0, 0.0))[0]), 0.0)
    return ranges
