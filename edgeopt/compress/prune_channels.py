"""prune-channels: remove whole output channels of Conv/Gemm layers, and rewrite every
consumer so that the model stays dense and simply smaller: the next layers' input
channels, depthwise convs (their channels go with their input), BatchNorm and per-channel
constants, Split sizes, the rows a Flatten feeds a Gemm. Channels tied by residual Adds or
Concat offsets are pruned as one set (edgeopt.compress._channels).

Each set's importance is its channels' weight norm (L2 or L1), each channel's norm divided
by its layer's mean, so layers on different scales (folded BatchNorms) compare. Within every
group of layers whose channels are tied, `ratio` of the sets go, the least important first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgeopt.compress._channels import (ELEMENTWISE, ChannelGraph, channel_graph, consumer_axis, is_depthwise,
                                        producer_axis, shape_of)
from edgeopt.compress._layers import check_ratio
from edgeopt.compress._pass import CompressionPass
from edgeopt.errors import UsageError
from edgeopt.passes._rewrite import add_initializer, constant_array, remove_unused_initializers
from edgeopt.passes.base import PassConfig, register

NORMS = {"l2": 2, "l1": 1}
ALLOCATIONS = ("uniform", "sensitivity")
PER_CHANNEL_PARAMS = {"BatchNormalization", "InstanceNormalization", "PRelu"}


@dataclass
class PruneChannelsConfig(PassConfig):
    ratio: float = 0.3  # share of each group's channels removed
    importance: str = "l2"  # "l2" | "l1" norm of each channel's weights
    exclude: list[str] | None = None  # layers whose output channels all stay
    allocation: str = "uniform"  # "uniform": `ratio` everywhere; "sensitivity": per group, as measured

    def __post_init__(self):
        check_ratio("--prune-channels", self.ratio, low_inclusive=False)
        if self.allocation not in ALLOCATIONS:
            raise UsageError(f"--prune-allocation {self.allocation}: unknown", hint=f"Choose one of: {', '.join(ALLOCATIONS)}")
        if self.importance not in NORMS:
            raise UsageError(f"--prune-importance {self.importance}: unknown", hint=f"Choose one of: {', '.join(NORMS)}")


def _importance(graph: ChannelGraph, norm: int) -> np.ndarray:
    """Per channel id: its weight norm over its layer's mean (0 for ids no layer owns)."""
    scores = np.zeros(len(graph.parent))
    for index, node in enumerate(graph.producers):
        weight = np.moveaxis(constant_array(node.inputs[1]), producer_axis(node), 0)
        norms = np.linalg.norm(weight.reshape(len(weight), -1).astype(np.float64), ord=norm, axis=1)
        ids = [i for i, owner in enumerate(graph.owner) if owner == index]
        scores[ids] = norms / (norms.mean() or 1.0)
    return scores


def tied_groups(graph: ChannelGraph) -> dict[str, list[int]]:
    """The prunable channel sets (union-find roots) of each group of layers whose channels are
    tied, keyed by the name of the group's first layer."""
    members = graph.sets()
    layers = list(range(len(graph.producers)))  # union-find over the layers sharing a set

    def layer_root(i: int) -> int:
        while layers[i] != i:
            i = layers[i]
        return i
    for ids in members.values():
        owners = sorted(graph.owner[i] for i in ids if graph.owner[i] >= 0)
        for other in owners[1:]:
            a, b = sorted((layer_root(other), layer_root(owners[0])))
            layers[b] = a
    groups: dict[str, list[int]] = defaultdict(list)
    blocked = graph.blocked_roots()
    for root, ids in members.items():
        owners = [graph.owner[i] for i in ids if graph.owner[i] >= 0]
        if owners and root not in blocked:
            groups[graph.producers[layer_root(owners[0])].name].append(root)
    return dict(groups)


def choose(graph: ChannelGraph, ratios: Callable[[str], float], norm: int) -> set[int]:
    """The union-find roots to prune: in every tied group, its ratio of the sets, least
    important first (never all of them)."""
    scores, members = _importance(graph, norm), graph.sets()
    pruned = set()
    for key, roots in tied_groups(graph).items():
        count = min(int(ratios(key) * len(roots)), len(roots) - 1)
        ranked = sorted(roots, key=lambda r: (np.mean(scores[members[r]]), r))
        pruned.update(ranked[:count])
    return pruned


def prune_channels(model: ir.Model, ratios: Callable[[str], float], norm: int, exclude: list[str]) -> list[str]:
    """Remove the chosen channels from `model` in place; one line per layer that lost some."""
    graph = channel_graph(model)
    names = {node.name for node in graph.producers}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise UsageError(f"--prune-channels-exclude: no prunable layer is named {', '.join(unknown)}",
                         hint=f"Prunable layers: {', '.join(sorted(names)[:8])}{', ...' if len(names) > 8 else ''}")
    for index, node in enumerate(graph.producers):
        if node.name in exclude:
            graph.block(np.array([i for i, owner in enumerate(graph.owner) if owner == index]))
    pruned = choose(graph, ratios, norm)
    if not pruned:
        return []
    keep = {name: np.array([graph.find(int(i)) not in pruned for i in ids]) for name, ids in graph.maps.items()}
    before = {node.name: shape_of(node.outputs[0])[1] for node in graph.producers}
    for node in list(model.graph):
        keep_in = keep.get(node.inputs[0].name) if node.inputs and node.inputs[0] is not None else None
        keep_out = keep.get(node.outputs[0].name) if node.outputs else None
        _rewrite(node, keep_in, keep_out)
    for node in model.graph:  # stale shapes; the pass manager infers them again
        for value in node.outputs:
            if not value.is_graph_output():
                value.shape = None
    changes = []
    for node in graph.producers:
        kept = int(keep[node.outputs[0].name].sum())
        if kept < before[node.name]:
            changes.append(f"{node.op_type} '{node.name}': {before[node.name]} -> {kept} output channels")
    return changes


def _set_constant(node: ir.Node, index: int, array: np.ndarray) -> None:
    old = node.inputs[index]
    node.replace_input_with(index, add_initializer(node.graph, array, f"{node.name}.pruned"))
    remove_unused_initializers(node.graph, [old])


def _slice_input(node: ir.Node, index: int, keep: np.ndarray, axis: int) -> None:
    array = constant_array(node.inputs[index])
    if array is not None and not keep.all() and array.ndim > axis and array.shape[axis] == keep.size:
        _set_constant(node, index, np.compress(keep, array, axis=axis))


def _rewrite(node: ir.Node, keep_in: np.ndarray | None, keep_out: np.ndarray | None) -> None:
    """Slice `node`'s constants for the channels its input and output keep."""
    axis = producer_axis(node)
    if axis is not None:
        if keep_in is not None:
            _slice_input(node, 1, keep_in, consumer_axis(node))
        if keep_out is not None:
            _slice_input(node, 1, keep_out, axis)
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                _slice_input(node, 2, keep_out, -1)  # Conv's B [M]; Gemm's C [N] or [1, N]
    elif is_depthwise(node) and keep_in is not None:
        _slice_input(node, 1, keep_in, 0)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            _slice_input(node, 2, keep_in, 0)
        node.attributes["group"] = ir.AttrInt64("group", int(keep_in.sum()))
    elif node.op_type in PER_CHANNEL_PARAMS and keep_in is not None:
        for index in range(1, len(node.inputs)):
            _slice_input(node, index, keep_in, 0)
    elif node.op_type in ELEMENTWISE and keep_out is not None:
        rank = len(shape_of(node.outputs[0]))
        for index, value in enumerate(node.inputs):
            array = constant_array(value)
            if array is not None and array.size > 1:
                _slice_input(node, index, keep_out, 1 - (rank - array.ndim))
    elif node.op_type == "Split" and keep_in is not None and len(node.inputs) > 1 and node.inputs[1] is not None:
        sizes, start = [], 0
        for value in node.outputs:
            size = shape_of(value)[1]
            sizes.append(int(keep_in[start:start + size].sum()))
            start += size
        _set_constant(node, 1, np.array(sizes, np.int64))
    elif node.op_type == "Reshape" and keep_out is not None:
        _set_constant(node, 1, np.array([shape_of(node.inputs[0])[0], -1], np.int64))


@register
class PruneChannels(CompressionPass):
    name = "prune-channels"
    config_class = PruneChannelsConfig
    feeds: list[dict] = []  # calibration samples, for allocation "sensitivity"

    @property
    def label(self) -> str:
        return f"--prune-channels {self.config.ratio:g}"

    def calibrate(self, feeds: list[dict]) -> None:
        self.feeds = feeds

    def apply(self, model: ir.Model) -> list[str]:
        config, norm = self.config, NORMS[self.config.importance]
        exclude = config.exclude or []
        if config.allocation == "uniform":
            return prune_channels(model, lambda key: config.ratio, norm, exclude)
        if not self.feeds:
            raise UsageError("--prune-allocation sensitivity measures each layer group on data, and has none",
                             hint="Give --calib (or --train-data), or --prune-allocation uniform.")
        from edgeopt.compress._sensitivity import allocate

        ratios = allocate(model, config.ratio, lambda m, r: prune_channels(m, r, norm, exclude), self.feeds)
        changes = prune_channels(model, lambda key: ratios.get(key, 0.0), norm, exclude)
        return [f"ratio per group of tied layers, from their measured sensitivity: "
                f"{', '.join(f'{k} {v:g}' for k, v in ratios.items() if v)}"] + changes
