"""What a training run is asked to do, and what it reports (no TensorFlow import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeopt.errors import UsageError

DEFAULT_EPOCHS = 10  # passes over the training samples when no --train-steps is given
DEFAULT_SECONDS = 300.0


@dataclass
class TrainConfig:
    steps: int | None = None  # None: DEFAULT_EPOCHS over the data
    seconds: float | None = None  # None: DEFAULT_SECONDS
    batch: int = 16
    seed: int = 0
    augment: bool = True
    qat: bool = False
    learning_rate: float = 1e-4  # share of each weight tensor's mean magnitude per step (trained already: small)
    range_learning_rate: float = 1e-3  # activation ranges, --qat: a share of each range's width

    def check(self) -> None:
        for flag, value in (("--train-steps", self.steps), ("--train-time", self.seconds), ("--train-batch", self.batch),
                            ("--train-rate", self.learning_rate)):
            if value is not None and value <= 0:
                raise UsageError(f"{flag} {value}: give a number above 0")


@dataclass
class TrainReport:
    steps: int
    seconds: float
    batch: int
    samples: int  # training samples (before augmentation)
    qat: bool
    augment: bool
    loss_first: float
    loss_last: float  # mean of the last steps' losses

    def to_json(self) -> dict:
        """For the manifest, which is byte-reproducible: no seconds (the stage costs have them)."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items() if k != "seconds"}
