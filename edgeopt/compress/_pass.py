"""What a compression pass adds to a pass: the sparsity it wants reached while fine-tuning."""

from __future__ import annotations

import onnx_ir as ir

from edgeopt.passes.base import Pass


class CompressionPass(Pass):
    """A pass that trades fidelity for size or speed; the build fine-tunes after it."""

    scope = "layer"  # how sparsity_targets are ranked: per layer, or "global"

    @property
    def label(self) -> str:
        """The step as the per-pass table names it (its flag and value)."""
        return self.name

    def calibrate(self, feeds: list[dict]) -> None:
        """A few samples (ONNX-layout feeds), for a pass that measures before it rewrites."""

    def sparsity_targets(self, model: ir.Model) -> dict[str, float]:
        """Per layer (ONNX node name), the sparsity to reach gradually during fine-tuning
        before `apply`; empty: fine-tune after `apply`."""
        return {}
