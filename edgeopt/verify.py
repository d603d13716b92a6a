"""Fidelity of the compiled artefact against the original model on held-out inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from edgeopt.data import Dataset
from edgeopt.errors import AccuracyGateError, DataError

Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class Fidelity:
    samples: int
    top1_agreement: float | None  # None: first output is not a score vector
    sqnr_db: float  # signal-to-quantization-noise ratio of all outputs
    max_abs_error: float
    reference_accuracy: float | None  # label accuracy, when the data has labels
    artefact_accuracy: float | None
    layers: list[dict] | None = None  # int8: per-layer SQNR (edgeopt.quant.layers)
    before_training: dict | None = None  # --qat: the calibrated int8 model's fidelity (to_json), for comparison

    @property
    def drop(self) -> tuple[str, float]:
        """The figure --max-drop gates: label accuracy drop, else top-1 disagreement."""
        if self.reference_accuracy is not None:
            return "label accuracy drop", self.reference_accuracy - self.artefact_accuracy
        if self.top1_agreement is not None:
            return "top-1 disagreement", 1.0 - self.top1_agreement
        return "none", 0.0

    def to_json(self) -> dict:
        """JSON has no infinity: an exact match (no noise) is written as sqnr_db null."""
        data = asdict(self)
        data["sqnr_db"] = data["sqnr_db"] if np.isfinite(data["sqnr_db"]) else None
        return data


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - actual) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise) if signal > 0 else float("-inf")


def measure(reference: Run, artefact: Run, data: Dataset, batch: int) -> Fidelity:
    ref_out, art_out = [], []
    for feeds in data.batches(batch):
        ref_out.append(reference(feeds))
        art_out.append(artefact(feeds))
    if not ref_out:
        raise DataError(f"{data.source}: {data.size} evaluation sample(s), fewer than the model's batch size {batch}",
                        hint="Give at least one full batch of held-out samples (--eval).")
    ref = [np.concatenate(parts) for parts in zip(*ref_out)]
    art = [np.concatenate(parts) for parts in zip(*art_out)]
    ref_flat = np.concatenate([r.reshape(-1) for r in ref])
    art_flat = np.concatenate([a.reshape(-1).astype(np.float64) for a in art])
    scores = ref[0].ndim >= 2 and ref[0].shape[-1] > 1
    ref_top1 = ref[0].reshape(len(ref[0]), -1).argmax(-1) if scores else None
    art_top1 = art[0].reshape(len(art[0]), -1).argmax(-1) if scores else None
    labels = data.batch_labels(batch)
    accuracy = (lambda top1: float(np.mean(top1 == labels))) if labels is not None and scores else None
    return Fidelity(
        samples=len(ref[0]),
        top1_agreement=float(np.mean(ref_top1 == art_top1)) if scores else None,
        sqnr_db=sqnr_db(ref_flat, art_flat),
        max_abs_error=float(np.max(np.abs(ref_flat - art_flat))),
        reference_accuracy=accuracy(ref_top1) if accuracy else None,
        artefact_accuracy=accuracy(art_top1) if accuracy else None,
    )


def gate(fidelity: Fidelity, max_drop: float | None) -> None:
    """--max-drop: fail the build when accuracy (or agreement) drops more than allowed."""
    what, drop = fidelity.drop
    if max_drop is None or drop <= max_drop + 1e-12:
        return
    raise AccuracyGateError(
        f"{what} is {drop:.2%} on {fidelity.samples} held-out samples, more than --max-drop {max_drop:.2%}",
        hint="Use more or more representative calibration data, keep float32, or loosen --max-drop.",
        details=fidelity.to_json(),
    )
