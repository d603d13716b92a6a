"""What a backend (one per target) gives the build: compiled files plus a host executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable

import numpy as np
import onnx_ir as ir

from edgeopt.data import Dataset
from edgeopt.edgetpu.analyse import DEFAULT_CACHE_BYTES
from edgeopt.edgetpu.compiler import EdgeTpuOptions

if TYPE_CHECKING:
    from edgeopt.train import TrainConfig

Executor = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class CompileOptions:
    quant: str = "float32"
    calibration: Dataset | None = None
    io_dtype: str | None = None  # int8 builds: the model's input/output type (None: the target's default)
    calibration_method: str = "minmax"
    bias_correction: bool = False
    rounding: str = "nearest"  # int8 weights: nearest | learned (edgeopt.quant.rounding)
    rounding_steps: int = 100
    param_cache_bytes: int = DEFAULT_CACHE_BYTES  # Edge TPU on-chip parameter cache (from the device profile)
    edgetpu: EdgeTpuOptions = field(default_factory=EdgeTpuOptions)
    note: Callable[[str], None] = lambda text: None  # progress lines from long work inside the compile step
    training: TrainConfig | None = None  # --qat
    training_data: Dataset | None = None  # None: the calibration data
    teacher: Callable[[dict], list] | None = None  # --qat distils from it (None: the model compiled)
    pixel_mean: tuple[float, ...] | None = None  # --pixel-input: the image input takes pixels 0..255 around these
    tvm_target: str | dict | None = None  # arm-cpu: the profile's TVM target (None: any ARMv8-A board)
    tune_trials: int | None = None  # arm-cpu: MetaSchedule trials (None: no tuning, or the cached result only)
    tune_seconds: float | None = None
    tvm_tracker: str | None = None  # arm-cpu: tune on the board behind this TVM RPC tracker (host:port:key)
    device_triple: str | None = None  # the profile's OS triple (arm-cpu: a non-gnu one gets glibc in the bundle)
    sparse_encoding: bool = True  # tflite: pruned weights in TFLite's sparse encoding where it pays and runs


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
    weight_bytes: int | None = None  # constant data in the artefact, when not analysable as ONNX
    # int8: per-layer error against the float lowering on a few samples (edgeopt.quant.layers)
    layers: Callable[[Iterable[dict]], list[dict]] | None = None
    before_training: Executor | None = None  # --qat: the calibrated int8 model, for the report

    @property
    def size(self) -> int:
        return len(self.files[self.main])


class Backend:
    name: ClassVar[str]
    quant_modes: ClassVar[tuple[str, ...]]
    default_quant: ClassVar[str] = "float32"
    description: ClassVar[str]
    io_dtypes: ClassVar[tuple[str, ...]] = ("float32",)  # what --io-dtype may be for int8
    default_io_dtype: ClassVar[str] = "float32"
    calibrations: ClassVar[tuple[str, ...]] = ("minmax",)
    bias_correction: ClassVar[bool] = False
    runner_files: ClassVar[tuple[str, ...]] = ()  # device-side files borrowed from other targets/ folders
    runner: ClassVar[str] = "runner.py"  # what runs the bundle on the device (manifest "runner")

    def prepare(self) -> None:
        """Start slow helpers now (the TFLite converter's process imports TensorFlow for
        seconds), so that they overlap loading the model rather than follow it."""

    def compile(self, model: ir.Model, options: CompileOptions) -> Artefact:
        raise NotImplementedError
