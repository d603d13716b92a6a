"""Refit: after a pass removes weights or channels, re-solve the weights that remain so each
layer's output matches the model before the pass, on calibration data (least squares, as in
ThiNet's and SparseGPT's layer-wise reconstruction).

Layers are refit one at a time in graph order, each from its input in the model as refit so
far, so a layer also absorbs the error of the layers before it. A weight that is zero stays
zero, unless the layer is one whose zeros the refit chooses anew (unstructured pruning with
data: edgeopt.compress._obs); a layer that lost output channels is fit to those it kept. The
fit is a ridge regression pulled towards the current weights, and a layer with too few input
rows for its inputs (a classifier after pooling) is left alone: few samples cannot run it
wild. Images are read as they are and mirrored (unless `mirror` is off), twice the samples
for the same photos. The models run through walks (edgeopt.compress._walk), so each node
runs once per sample. Measured on EfficientNet-Lite0, 50% of each layer's weights pruned by
magnitude, no fine-tuning: top-1 agreement with the unpruned model 0% without refit, 74.7%
refit on 128 photo crops, 76.3% on the same crops and their mirror images (refit in 34 s,
was 225 s without walks on the 128 crops alone). Depthwise convs are not refit: refitting
them channel by channel too (a lab run, refit on 1,024 crops, no fine-tuning) left Lite0
where it was, --prune 0.5 at 78.5% int8 against 78.0% (SQNR 13.01 against 13.07 dB),
--prune-channels 0.3 at 74.5% against 74.2%, for a fifth more build time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir

from edgeopt.compress._layers import Layer, conv_attributes, explicit_pads, weight_layers
from edgeopt.compress._obs import obs_prune
from edgeopt.compress._walk import Walk
from edgeopt.data import Dataset
from edgeopt.passes._rewrite import constant_array, replace_constant_input

SAMPLES = 128  # calibration samples a refit reads: 32 left Lite0 at 72% agreement, 128 at 76% (a lab run)
ROWS_PER_SAMPLE = 1024  # output positions a sample contributes to a conv's fit, evenly spaced
DAMPING = 1e-2  # ridge weight, as a share of the mean input power (SparseGPT's percdamp)
SOLVE_ELEMENTS = 1 << 23  # rows solved at once hold at most this many matrix elements (64 MB)
ROWS_PER_INPUT = 4  # fewer input rows than this per input (a classifier after pooling) overfit: left alone


@dataclass
class _Linear:
    """A layer seen as y = W x + b over rows of its input (a conv's patches)."""
    layer: Layer
    weight: np.ndarray  # [out, in]
    bias: np.ndarray | None  # [out], None when the node has none

    def rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The input rows the layer multiplies and the output rows they give: patches of a
        conv's NCHW input at an even spread of at most ROWS_PER_SAMPLE output positions (the
        neighbours of a position say much the same), or the matrix's rows."""
        if self.layer.node.op_type != "Conv":
            return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        a = conv_attributes(self.layer.node)
        (kh, kw), (sh, sw), (dh, dw) = self.layer.weight.shape[2:], a["strides"], a["dilations"]
        top, left, bottom, right = a["pads"]
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        windows = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
        windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # [N, C, H', W', kh, kw]
        height, width = y.shape[2:]
        spread = np.arange(0, height * width, max(1, height * width // ROWS_PER_SAMPLE))
        ys, xs = spread // width, spread % width
        patches = windows[:, :, ys, xs].transpose(0, 2, 1, 3, 4)  # [N, P, C, kh, kw]
        return patches.reshape(-1, x.shape[1] * kh * kw), y[:, :, ys, xs].transpose(0, 2, 1).reshape(-1, y.shape[1])

    def write(self) -> None:
        node, stored = self.layer.node, self.layer.weight
        if node.op_type == "Conv":
            self.layer.set_weight(self.weight.reshape(stored.shape))
        else:
            self.layer.set_weight(self.weight if self.layer.output_axis == 0 else self.weight.T)
        if self.bias is not None:
            shape = constant_array(node.inputs[2]).shape
            replace_constant_input(node, 2, self.bias.reshape(shape).astype(stored.dtype), f"{node.name}.bias")


def _linear(layer: Layer) -> _Linear | None:
    """The layer as a _Linear, or None when it is not one this refit handles."""
    node = layer.node
    if node.op_type == "Conv" and (layer.groups != 1 or layer.weight.ndim != 4 or not explicit_pads(node)):
        return None
    if node.op_type == "Gemm" and (node.attributes.get_int("transA", 0) or node.attributes.get_float("alpha", 1.0) != 1
                                   or node.attributes.get_float("beta", 1.0) != 1):
        return None
    weight = layer.weight.reshape(len(layer.weight), -1) if node.op_type == "Conv" else (
        layer.weight if layer.output_axis == 0 else layer.weight.T)
    has_bias = len(node.inputs) > 2 and node.inputs[2] is not None
    bias = constant_array(node.inputs[2]) if has_bias else None
    if has_bias and (bias is None or bias.size != len(weight)):
        return None
    return _Linear(layer, weight.astype(np.float64), None if bias is None else bias.reshape(-1).astype(np.float64))


def _statistics(linear: _Linear, now: list[np.ndarray], then: list[np.ndarray], keep: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """H = X'X and G = X'Y: X the layer's input rows now (with a 1 for the bias), from its
    inputs `now`; Y its outputs `then`, in the model before, on the channels it keeps; and the
    rows read."""
    h, g, rows = 0.0, 0.0, 0
    for x, y in zip(now, then):
        x, y = linear.rows(x, y)
        if keep is not None:
            y = y[:, keep]
        if linear.bias is not None:
            x = np.concatenate([x, np.ones((len(x), 1), x.dtype)], 1)
        h = h + (x.T @ x).astype(np.float64)
        g = g + (x.T @ y).astype(np.float64)
        rows += len(x)
    return h, g, rows


def _mirrored(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The feed with its images flipped left-right (4-D float inputs, 1 or 3 channels first or
    last), or None when it has none: twice the samples for the same photos."""
    flipped, any_image = {}, False
    for name, x in feed.items():
        axis = 3 if x.ndim == 4 and x.shape[1] in (1, 3) else 2 if x.ndim == 4 and x.shape[3] in (1, 3) else None
        if x.dtype.kind != "f" or axis is None:
            flipped[name] = x
        else:
            flipped[name], any_image = np.flip(x, axis).copy(), True
    return flipped if any_image else None


def _damping(h: np.ndarray) -> float:
    return DAMPING * float(np.mean(np.diag(h))) or DAMPING


def _solve(h: np.ndarray, g: np.ndarray, current: np.ndarray, bias: bool, keep_zeros: bool = True) -> np.ndarray:
    """Rows of `current` ([out, in], the bias last when `bias`) refit:
    min |X w - y|^2 + damping |w - current|^2, over the nonzero weights of each row only
    (all weights with `keep_zeros` False). Rows with as many weights are solved as a stack."""
    damping = _damping(h)
    nonzero = (current != 0) | (not keep_zeros)
    if bias:
        nonzero[:, -1] = True
    if nonzero.all():
        return np.linalg.solve(h + damping * np.eye(len(h)), g + damping * current.T).T
    fitted, counts = np.zeros_like(current), nonzero.sum(1)
    for count in np.unique(counts[counts > 0]):
        rows = np.flatnonzero(counts == count)
        for chunk in np.array_split(rows, -(-len(rows) * count * count // SOLVE_ELEMENTS)):
            keep = np.stack([np.flatnonzero(nonzero[row]) for row in chunk])  # [rows, count]
            system = h[keep[:, :, None], keep[:, None, :]] + damping * np.eye(count)
            target = g[keep, chunk[:, None]] + damping * current[chunk[:, None], keep]
            fitted[chunk[:, None], keep] = np.linalg.solve(system, target[..., None])[..., 0]
    return fitted


def _with_bias(linear: _Linear) -> np.ndarray:
    """[out, in], and the bias as a last column when the layer has one."""
    return linear.weight if linear.bias is None else np.concatenate([linear.weight, linear.bias[:, None]], 1)


def _rezeroed(h: np.ndarray, g: np.ndarray, dense: _Linear, sparsity: float) -> np.ndarray:
    """The layer's weights (bias last) with `sparsity` of each row zeroed where the fit loses
    least (edgeopt.compress._obs), from the dense layer refit to the same data."""
    bias = dense.bias is not None
    fitted = _solve(h, g, _with_bias(dense), bias, keep_zeros=False)
    return obs_prune(fitted, h, sparsity, _damping(h), frozen=int(bias))


def refit(model: ir.Model, before: bytes, data: Dataset, batch: int, kept: dict[str, np.ndarray] | None = None,
          sparsity: dict[str, float] | None = None, mirror: bool = True, note=lambda text: None) -> list[str]:
    """Refit every layer from the first one the pass changed onwards (graph order), towards
    `before` (the serialised model before the pass): each to the output of the same name there,
    so the last op of a chain that replaced a layer is fit to that layer's output. `kept`: per
    layer that lost output channels, the mask of those left. `sparsity`: per layer whose zeros
    the refit chooses anew, the share of each row's weights to zero (the pass's zeros are then
    only the fallback, for a layer refit leaves alone). `mirror`: read the images' mirror images
    too. Returns what it did, in lines."""
    kept, sparsity = kept or {}, sparsity or {}
    feeds = [feed for _, feed in zip(range(max(1, SAMPLES // batch)), data.batches(batch))]
    mirrored = [m for m in map(_mirrored, feeds) if m is not None] if mirror else []
    feeds += mirrored
    original = ir.from_proto(onnx.load_from_string(before))
    was_made = {node.outputs[0].name: node for node in original.graph}  # a chain's last op: the layer it replaced
    now, then = Walk(feeds), Walk(feeds)
    layers = [(layer, _linear(layer)) for layer in weight_layers(model)]
    changes, started, count = [], False, 0
    for index, (layer, linear) in enumerate(layers):
        was = was_made.get(layer.node.outputs[0].name)
        started = started or was is None or not np.array_equal(layer.weight, constant_array(was.inputs[1]))
        if not started or linear is None or was is None:
            continue
        note(f"refitting layer {index + 1} of {len(layers)}: {layer.describe()}")
        inputs = [x for x, in now.advance(model, [layer.node.inputs[0].name])]
        outputs = [y for y, in then.advance(original, [was.outputs[0].name])]
        h, g, rows = _statistics(linear, inputs, outputs, kept.get(layer.name))
        if rows < ROWS_PER_INPUT * linear.weight.shape[1]:
            changes.append(f"{layer.describe()}: kept as it is, {rows} input rows are too few to refit its "
                           f"{linear.weight.shape[1]} inputs")
            continue
        current = _with_bias(linear)
        if layer.name in sparsity:
            dense = _linear(Layer(was, constant_array(was.inputs[1])))
            current = _rezeroed(h, g, dense, sparsity[layer.name])
        fitted = _solve(h, g, current, linear.bias is not None)
        linear.weight, linear.bias = (fitted, None) if linear.bias is None else (fitted[:, :-1], fitted[:, -1])
        linear.write()
        count += 1
    samples = len(feeds) * batch
    return [f"{count} layers from the first one changed on refit to their outputs before, on {samples} samples"
            + (" (half of them mirror images)" if mirrored else "")] + changes
