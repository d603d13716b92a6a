"""What a backend (one per target) gives the build: compiled files plus a host executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import onnx_ir as ir

from edgeopt.data import Dataset

Executor = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class CompileOptions:
    quant: str = "float32"
    calibration: Dataset | None = None


@dataclass
class Artefact:
    """The compiled model: bundle files, I/O specs for the manifest, and a host executor
    that verification and golden outputs use."""

    files: dict[str, bytes]  # path inside the bundle -> content
    main: str  # the model file among `files`
    inputs: list[dict]
    outputs: list[dict]
    run: Executor
    model: ir.Model | None = None  # the artefact as IR, when it is ONNX (for analysis)
    tolerances: list[dict] = field(default_factory=list)  # per output: atol, rtol for golden checks
    info: dict = field(default_factory=dict)  # target-specific facts for the manifest

    @property
    def size(self) -> int:
        return len(self.files[self.main])


class Backend:
    name: ClassVar[str]
    quant_modes: ClassVar[tuple[str, ...]]
    description: ClassVar[str]

    def compile(self, model: ir.Model, options: CompileOptions) -> Artefact:
        raise NotImplementedError
