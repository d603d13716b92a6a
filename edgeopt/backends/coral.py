"""Coral Edge TPU: the tflite target's full-int8 conversion (uint8 I/O by default, batch 1),
checked against edgetpu_compiler 16's rules by our analyser, and compiled by the real compiler
when this machine has it. Without it the bundle holds the Edge TPU-ready model, the analysis,
and the one command that finishes the job on an x86-64 Linux host.

The host verifies model.tflite on the CPU: the Edge TPU runs the same int8 graph.
"""

from __future__ import annotations

import json
import shlex

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.backends.tflite import calibrate_and_convert, tflite_artefact
from edgeopt.edgetpu import analyse, analysis_json, render
from edgeopt.edgetpu.compiler import command, find_compiler, run_compiler
from edgeopt.errors import CompileError, UnsupportedOpError
from edgeopt.ir import input_specs
from edgeopt.tflite.reader import read_tflite

MODEL_FILE = "model.tflite"
ANALYSIS_JSON, ANALYSIS_LOG, COMPILER_LOG = "edgetpu_analysis.json", "edgetpu_analysis.log", "edgetpu_compiler.log"


def _require_batch_one(model) -> None:
    for spec in input_specs(model):
        if spec.shape and spec.shape[0] != 1:
            raise UnsupportedOpError(
                f"coral: input '{spec.name}' has batch {spec.shape[0]}; the Edge TPU runs one sample at a time",
                hint=f"Re-export with batch 1, or pass --input-shape {spec.name}=1,{','.join(map(str, spec.shape[1:]))}.")


class CoralBackend(Backend):
    name = "coral"
    quant_modes = ("int8",)
    default_quant = "int8"
    io_dtypes = ("uint8", "int8")
    default_io_dtype = "uint8"  # as Coral's own examples use
    calibrations = ("minmax", "percentile", "mse")
    bias_correction = True
    runner_files = ("tflite/litert_model.py",)
    description = "Coral Edge TPU (full int8, analysed for edgetpu_compiler 16, compiled when it is installed)"

    def compile(self, model, options: CompileOptions) -> Artefact:
        _require_batch_one(model)
        data, lowered, info = calibrate_and_convert(model, options)
        report = analyse(read_tflite(data), options.param_cache_bytes)
        if not report.compiles:
            raise CompileError(f"coral: edgetpu_compiler would refuse the converted model: {'; '.join(report.errors)}",
                               hint="Report this: edgeopt's conversion should never produce such a model.")
        analysis = analysis_json(report)
        predicted = analysis["summary"]
        files = {MODEL_FILE: data, ANALYSIS_LOG: render(report, MODEL_FILE).encode(),
                 ANALYSIS_JSON: (json.dumps(analysis, indent=2) + "\n").encode()}
        edgetpu = {"predicted": {k: predicted[k] for k in ("edgetpu_ops", "cpu_ops", "on_chip_bytes", "off_chip_bytes")},
                   "parameter_bytes": report.parameter_bytes, "compiled": None,
                   "compile_command": shlex.join(command(MODEL_FILE, options.edgetpu))}
        compiler = find_compiler(options.edgetpu)
        if compiler:
            compiled = run_compiler(compiler, data, MODEL_FILE, options.edgetpu)
            files.update(compiled.files)
            files[COMPILER_LOG] = compiled.text.encode()
            edgetpu.update(compiled=sorted(compiled.files), compiler=compiled.log.summary())
        artefact = tflite_artefact(data, lowered, "int8", {**info, "edgetpu": edgetpu})
        artefact.files.update(files)
        return artefact
