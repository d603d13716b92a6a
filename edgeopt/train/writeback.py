"""Trained weights back into the IR (DESIGN.md, "Training"): every target, `onnx` included,
then gets them, and later passes start from them.

The lowering turns IR constants into TF variables by moving elements (OIHW to HWIO, a
Flatten's row order, a group's slice) and sometimes scaling them (Gemm's alpha). Which
element went where is read off the lowering itself rather than restated per op: the model is
lowered again with every weight constant replaced by element ids (1, 2, ... exact in
float32), and once with ones for the scale; a variable element then holds id x scale. The
mapping is checked against the untrained weights, so an element whose value the lowering
computed from several constants (a standalone BatchNormalization's scale) is never written
to a wrong place: its variable is reported as not written back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgeopt.lower import LoweredModel, lower

ID_LIMIT = 1 << 24  # float32 holds every integer up to here exactly


@dataclass
class Writeback:
    constants: list[str] = field(default_factory=list)  # IR initializers given trained values
    skipped: list[str] = field(default_factory=list)  # variables whose elements map to no single constant element


def _float_sources(model: ir.Model, lowered: LoweredModel) -> dict[str, np.ndarray]:
    found = {}
    for name in lowered.weight_sources:
        value = model.graph.initializers.get(name)
        if value is not None and value.const_value is not None and np.issubdtype(value.const_value.dtype.numpy(),
                                                                                  np.floating):
            found[name] = value.const_value.numpy()
    return found


def _lowered_with(model: ir.Model, arrays: dict[str, np.ndarray], edgetpu: bool) -> list[np.ndarray]:
    """The lowering's variable values with these constants swapped in (the IR is restored)."""
    graph, originals = model.graph, {}
    for name, array in arrays.items():
        originals[name] = graph.initializers[name].const_value
        graph.initializers[name].const_value = ir.tensor(array.astype(originals[name].dtype.numpy()), name=name)
    try:
        return [v.numpy() for v in lower(model, edgetpu).weights]
    finally:
        for name, tensor in originals.items():
            graph.initializers[name].const_value = tensor


def write_back(model: ir.Model, lowered: LoweredModel, edgetpu: bool = False) -> Writeback:
    """Put `lowered`'s current variable values into `model`'s initializers (in place)."""
    sources = _float_sources(model, lowered)
    report = Writeback()
    total = sum(a.size for a in sources.values())
    if not sources or total >= ID_LIMIT:
        report.skipped = [v.name for v in lowered.weights]
        return report
    offsets, start = {}, 1
    for name, array in sources.items():
        offsets[name] = start
        start += array.size
    flat_originals = np.concatenate([a.reshape(-1).astype(np.float64) for a in sources.values()])
    ids = _lowered_with(model, {n: np.arange(offsets[n], offsets[n] + a.size).reshape(a.shape) for n, a in sources.items()},
                        edgetpu)
    ones = _lowered_with(model, {n: np.ones_like(a) for n, a in sources.items()}, edgetpu)
    untrained = _lowered_with(model, {}, edgetpu)
    sums, counts = np.zeros(total), np.zeros(total)
    for variable, probe, scale, before in zip(lowered.weights, ids, ones, untrained):
        with np.errstate(divide="ignore", invalid="ignore"):
            index = np.round(probe.astype(np.float64) / scale).astype(np.int64) - 1
        valid = (scale != 0) & (index >= 0) & (index < total)
        expected = flat_originals[np.clip(index, 0, total - 1)] * scale
        if not valid.all() or not np.allclose(expected, before, rtol=1e-6, atol=1e-12):
            report.skipped.append(variable.name)
            continue
        np.add.at(sums, index.reshape(-1), (variable.numpy().astype(np.float64) / scale).reshape(-1))
        np.add.at(counts, index.reshape(-1), 1)
    for name, array in sources.items():
        start, size = offsets[name] - 1, array.size
        written = counts[start:start + size] > 0
        if not written.any():
            continue
        new = array.reshape(-1).astype(np.float64)
        new[written] = sums[start:start + size][written] / counts[start:start + size][written]
        new = new.reshape(array.shape).astype(array.dtype)
        if not np.array_equal(new, array):
            model.graph.initializers[name].const_value = ir.tensor(new, name=name)
            report.constants.append(name)
    return report
