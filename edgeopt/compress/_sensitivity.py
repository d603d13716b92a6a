"""Channel-pruning ratios per group of tied layers, from a measured sensitivity.

Each group is pruned alone at a few ratios on a copy of the model, and the outputs on a few
calibration samples are compared with the unpruned model's (relative squared error). Then,
starting from nothing pruned, the step that saves the most MACs per unit of added error is
taken, again and again, until as many MACs are saved as `ratio` everywhere would save.
Errors of different groups are taken to add up, which is what makes the greedy choice cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir

from edgeopt.compress._channels import channel_graph
from edgeopt.ir import infer_shapes, ort_session, to_bytes
from edgeopt.ir.analysis import analyze

STEPS = (0.15, 0.3, 0.45, 0.6)  # the ratios each group is measured at


def _outputs(data: bytes, feeds: list[dict]) -> np.ndarray:
    session = ort_session(data)
    return np.concatenate([np.concatenate([o.reshape(len(o), -1) for o in session.run(None, f)], 1) for f in feeds])


def allocate(model: ir.Model, ratio: float, prune: Callable[[ir.Model, Callable[[str], float]], list[str]],
             feeds: list[dict], note=lambda text: None) -> dict[str, float]:
    """Group key -> ratio, saving at least the MACs that `ratio` everywhere saves."""
    from edgeopt.compress.prune_channels import tied_groups

    data = to_bytes(model)
    reference = _outputs(data, feeds)
    signal = float(np.mean(reference.astype(np.float64) ** 2)) or 1.0
    base = analyze(model).macs

    def trial(ratios: dict[str, float]) -> tuple[int, float]:
        """(MACs saved, relative output error) with these groups pruned."""
        copy = ir.from_proto(onnx.load_from_string(data))
        prune(copy, lambda key: ratios.get(key, 0.0))
        copy = infer_shapes(copy)
        error = float(np.mean((_outputs(to_bytes(copy), feeds) - reference) ** 2)) / signal
        return base - analyze(copy).macs, error

    keys = list(tied_groups(channel_graph(model)))
    target = trial({key: ratio for key in keys})[0]
    measured = {key: [(0, 0.0)] + [trial({key: step}) for step in STEPS] for key in keys}
    note(f"prune-channels: measured {len(keys)} groups of tied layers at {len(STEPS)} ratios each")
    level, saved = dict.fromkeys(keys, 0), 0
    while saved < target:
        def gain(key: str) -> float:
            (s0, e0), (s1, e1) = measured[key][level[key]], measured[key][level[key] + 1]
            return (s1 - s0) / max(e1 - e0, 1e-9)
        open_keys = [k for k in keys if level[k] < len(STEPS) and measured[k][level[k] + 1][0] > measured[k][level[k]][0]]
        if not open_keys:
            break
        best = max(open_keys, key=gain)
        saved += measured[best][level[best] + 1][0] - measured[best][level[best]][0]
        level[best] += 1
    return {key: (STEPS[level[key] - 1] if level[key] else 0.0) for key in keys}
