"""prune: unstructured pruning. A share of each chosen layer's weights become exactly zero
(without data the smallest, with data those that cost least); the model keeps its shape,
and the zeros pay off where the bundle is stored compressed (gzip) and stay zero through
fine-tuning, --qat and int8 conversion.

Magnitudes are compared within each output channel's scale (|w| over the channel's RMS):
folded BatchNorms leave channels, and layers, on scales 100x apart, and raw magnitudes
would empty whole small-scale channels (EfficientNet-Lite0, 30% per layer, no fine-tuning:
top-1 agreement 26% by raw magnitude). `scope = "layer"` gives every layer the same
sparsity; `"global"` ranks all chosen weights together. Depthwise kernels (k x k weights a
channel, the most sensitive, and few) stay dense unless `depthwise` is set.
With calibration data the magnitudes only set each layer's share of zeros: refit, layer by
layer, chooses which weights of each row to zero by what they cost the layer's output on the
data (edgeopt.compress._obs), and fits the rest to the outputs the dense layers had
(edgeopt.compress._refit); fine-tuning keeps the zeros. On Lite0 at 0.5, no fine-tuning:
top-1 agreement 76.3% with magnitude's zeros refit, 81.0% with refit's own.
With `allocation = "sensitivity"` each layer's share is set by what it costs the model's
outputs (edgeopt.compress._sensitivity): as many zeros, where they cost least.
Without refit (`refit = False`), fine-tuning reaches the sparsity gradually
(edgeopt.train.sparsity) and this pass then only confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.errors import UsageError
from edgeopt.compress._layers import Layer, check_ratio, chosen_layers
from edgeopt.compress._pass import CompressionPass, RefitConfig
from edgeopt.compress._sensitivity import allocate_sparsity
from edgeopt.ir import to_bytes
from edgeopt.passes._rewrite import constant_array
from edgeopt.passes.base import register

SCOPES = ("layer", "global")
ALLOCATIONS = ("uniform", "sensitivity")


@dataclass
class PruneConfig(RefitConfig):
    sparsity: float = 0.5  # share of each chosen layer's weights set to zero
    scope: str = "layer"  # "layer" | "global"
    exclude: list[str] | None = None  # node names kept dense; None: the first and the last weight layer
    depthwise: bool = False  # depthwise kernels too (k x k weights a channel: the most sensitive, and few)
    allocation: str = "uniform"  # "uniform": `sparsity` per layer (or global); "sensitivity": per layer, as measured

    def __post_init__(self):
        check_ratio("--prune", self.sparsity)
        for flag, value, choices in (("--prune-scope", self.scope, SCOPES),
                                     ("--prune-allocation", self.allocation, ALLOCATIONS)):
            if value not in choices:
                raise UsageError(f"{flag} {value}: unknown", hint=f"Choose one of: {', '.join(choices)}")
        if self.scope == "global" and self.allocation == "sensitivity":
            raise UsageError("--prune-scope global and --prune-allocation sensitivity both choose each layer's share",
                             hint="Give one of them.")


def magnitude_scores(weights: list[np.ndarray], axes: list[int]) -> list[np.ndarray]:
    """|w| over the RMS of its output channel (`axes`: each weight's output-channel axis)."""
    scores = []
    for w, axis in zip(weights, axes):
        rows = np.moveaxis(np.abs(w).astype(np.float64), axis, -1)
        rms = np.sqrt(np.mean(np.square(rows.reshape(-1, rows.shape[-1])), axis=0))
        scores.append(np.moveaxis(rows / np.where(rms > 0, rms, 1.0), -1, axis))
    return scores


def sparsity_masks(weights: list[np.ndarray], sparsity: float, scope: str, axes: list[int]) -> list[np.ndarray]:
    """Boolean keep-masks: the round(sparsity * n) lowest-scoring weights of each layer (of all
    layers together with scope "global") dropped; ties broken by position: deterministic."""
    scores = magnitude_scores(weights, axes)
    if scope == "layer":
        return [_keep([score], sparsity)[0] for score in scores]
    return _keep(scores, sparsity)


def _keep(scores: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    flat = np.concatenate([s.reshape(-1) for s in scores])
    keep = np.ones(flat.size, bool)
    keep[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = False
    return [piece.reshape(s.shape) for piece, s in zip(np.split(keep, np.cumsum([s.size for s in scores])[:-1]), scores)]


@register
class Prune(CompressionPass):
    name = "prune"
    config_class = PruneConfig

    def layers(self, model: ir.Model) -> list[Layer]:
        return [layer for layer in chosen_layers(model, self.config.exclude, "--prune-exclude")
                if self.config.depthwise or not layer.depthwise]

    def sparsity_targets(self, model: ir.Model) -> dict[str, float]:
        if self.refits or self.config.allocation == "sensitivity":  # pruned at once, then fine-tuned
            return {}
        return {layer.name: self.config.sparsity for layer in self.layers(model)}

    @property
    def scope(self) -> str:
        return self.config.scope

    @property
    def label(self) -> str:
        shares = "global" if self.config.scope == "global" else self.config.allocation
        return f"--prune {self.config.sparsity:g}" + (f" ({shares})" if shares != "uniform" else "")

    def apply(self, model: ir.Model) -> list[str]:
        before, layers, config = to_bytes(model), self.layers(model), self.config
        if config.allocation == "sensitivity":
            self.require_data("--prune-allocation sensitivity")
            allocated = allocate_sparsity(model, layers, config.sparsity, self.measuring_feeds(), self.note)
            masks = [sparsity_masks([layer.weight], allocated[layer.name], "layer", [layer.output_axis])[0]
                     for layer in layers]
        else:
            masks = sparsity_masks([layer.weight for layer in layers], config.sparsity, config.scope,
                                   [layer.output_axis for layer in layers])
        for layer, keep in zip(layers, masks):
            pruned = np.where(keep, layer.weight, 0).astype(layer.weight.dtype)
            if not np.array_equal(pruned, layer.weight):
                layer.set_weight(pruned)
        shares = {layer.name: float(np.mean(~keep)) for layer, keep in zip(layers, masks) if not keep.all()}
        refitted = self.refit(model, before, sparsity=shares) if shares else []
        changes = []
        for layer in layers:
            weight = constant_array(layer.node.inputs[1])
            zeros = int(np.sum(weight == 0))
            if zeros:
                changes.append(f"{layer.describe()}: {zeros / weight.size:.1%} of its {weight.size} weights zero")
        return changes + refitted
