"""`edgeopt check --target coral`: our Edge TPU analysis of a .tflite (made by any tool) or of a
source model after edgeopt's Edge TPU-ready conversion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeopt.edgetpu import DEFAULT_CACHE_BYTES, EdgeTpuReport, analyse, analysis_json, render
from edgeopt.errors import UnsupportedOpError
from edgeopt.tflite.reader import read_tflite


@dataclass
class CheckResult:
    model: Path
    report: EdgeTpuReport
    log: str
    converted: bool  # the source model was converted by edgeopt first

    @property
    def ok(self) -> bool:
        return self.report.compiles and self.report.mapped == len(self.report.ops)

    @property
    def exit_code(self) -> int:
        return UnsupportedOpError.exit_code

    def to_json(self) -> dict:
        return {"model": str(self.model), "converted_by_edgeopt": self.converted, **analysis_json(self.report)}


def _convert(path: Path, calib: str | None, shapes: dict, module: str | None, trust_pickle: bool) -> bytes:
    from edgeopt import passes
    from edgeopt.backends.base import CompileOptions
    from edgeopt.backends.coral import CoralBackend
    from edgeopt.backends.tflite import calibrate_and_convert
    from edgeopt.data import RANDOM, load_data
    from edgeopt.frontends import FrontendOptions, load_model
    from edgeopt.ir import input_specs

    loaded = load_model(path, FrontendOptions(shapes, trust_pickle, module))
    model, _ = passes.run_passes(loaded.model)
    data = load_data(calib or RANDOM, input_specs(model), samples=8)
    options = CompileOptions("int8", data, io_dtype=CoralBackend.default_io_dtype)
    data = calibrate_and_convert(model, options, edgetpu=True).data
    return data


def check_model(path: Path, profile: str | None = None, calib: str | None = None, shapes: dict | None = None,
                module: str | None = None, trust_pickle: bool = False) -> CheckResult:
    from edgeopt.profiles import load_profile

    cache = DEFAULT_CACHE_BYTES
    if profile:
        cache = load_profile(profile).param_cache_bytes or cache
    converted = path.suffix.lower() != ".tflite"
    data = _convert(path, calib, shapes or {}, module, trust_pickle) if converted else path
    report = analyse(read_tflite(data), cache)
    name = path.name if not converted else f"{path.stem}.tflite"
    return CheckResult(path, report, render(report, name), converted)
