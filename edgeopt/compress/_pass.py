"""What a compression pass adds to a pass: the sparsity it wants reached while fine-tuning,
and the refit of its layers to the model before it, on data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

import onnx_ir as ir

from edgeopt.compress import _refit
from edgeopt.data import Dataset
from edgeopt.errors import UsageError
from edgeopt.passes.base import Pass, PassConfig

MEASURING_FEEDS = 16  # batches a pass measures sensitivities and activations on


@dataclass
class RefitConfig(PassConfig):
    """Options of a pass that refits (edgeopt.compress._refit) after it rewrites."""
    refit: bool = True  # with data: refit the layers from the first changed on to the outputs before the pass
    mirror: bool = True  # refit reads the images' mirror images too (not where a flip changes the meaning)


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

    def require_data(self, flag: str) -> None:
        """A clear error when an option that measures on data (`flag`) has none."""
        if self.data is None:
            raise UsageError(f"{flag} measures the layers on data, and has none",
                             hint="Give --calib (or --train-data), or leave the option out.")

    def measuring_feeds(self) -> list[dict]:
        """The first MEASURING_FEEDS batches of the data (none without data)."""
        return [] if self.data is None else list(islice(self.data.batches(self.batch), MEASURING_FEEDS))

    @property
    def refits(self) -> bool:
        return self.config.refit and self.data is not None

    def refit(self, model: ir.Model, before: bytes, **options) -> list[str]:
        """Refit `model` towards `before` (serialised before the pass) when the pass refits;
        `options` as edgeopt.compress._refit.refit takes them. Returns what it did, in lines."""
        if not self.refits:
            return []
        return _refit.refit(model, before, self.data, self.batch, mirror=self.config.mirror, note=self.note, **options)
