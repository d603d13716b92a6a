"""What a compression pass adds to a pass: the sparsity it wants reached while fine-tuning."""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from edgeopt.data import Dataset
from edgeopt.passes.base import Pass


class CompressionPass(Pass):
    """A pass that trades fidelity for size or speed; the build fine-tunes after it."""

    scope = "layer"  # how sparsity_targets are ranked: per layer, or "global"
    data: Dataset | None = None  # calibration (or training) samples, when the build has any
    batch = 1  # the model's static batch size

    @property
    def label(self) -> str:
        """The step as the per-pass table names it (its flag and value)."""
        return self.name

    def calibrate(self, data: Dataset | None, batch: int, note: Callable[[str], None] = lambda text: None) -> None:
        """Samples (ONNX layout), for a pass that measures before it rewrites or refits after;
        `note` shows progress on long work."""
        self.data, self.batch, self.note = data, batch, note

    def sparsity_targets(self, model: ir.Model) -> dict[str, float]:
        """Per layer (ONNX node name), the sparsity to reach gradually during fine-tuning
        before `apply`; empty: fine-tune after `apply`."""
        return {}
