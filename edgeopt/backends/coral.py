"""Coral Edge TPU: the tflite target's full-int8 conversion (uint8 I/O by default, batch 1),
checked against edgetpu_compiler 16's rules by our analyser, and compiled by the real compiler
when this machine has it. Without it the bundle holds the Edge TPU-ready model, the analysis,
and the one command that finishes the job on an x86-64 Linux host.

The host verifies model.tflite on the CPU: the Edge TPU runs the same int8 graph.
`--edgetpu-fix` rewrites the model first (edgeopt/edgetpu/fix.py); when it cuts a tail off,
the bundle also holds cpu_tail.tflite (float), which the runner chains after the Edge TPU part.
"""

from __future__ import annotations

import json
import shlex

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.backends.tflite import FLOAT_TOLERANCE, calibrate_and_convert, device_module, model_layout, tflite_artefact
from edgeopt.edgetpu import analyse, analysis_json, render
from edgeopt.edgetpu.compiler import command, find_compiler, run_compiler
from edgeopt.edgetpu.fix import fix_for_edgetpu
from edgeopt.errors import CompileError, UnsupportedOpError
from edgeopt.ir import input_specs
from edgeopt.ir.cut import Cut
from edgeopt.tflite.isolated import start_converter
from edgeopt.tflite.reader import read_tflite

MODEL_FILE = "model.tflite"
ANALYSIS_JSON, ANALYSIS_LOG, COMPILER_LOG = "edgetpu_analysis.json", "edgetpu_analysis.log", "edgetpu_compiler.log"
TAIL_FILE = "cpu_tail.tflite"
# A tail output moves at most this many times as far as the head outputs it reads (Softmax,
# LogSoftmax, Sigmoid and the like are 1- or 2-Lipschitz): golden tolerances scale with it.
TAIL_GAIN = 2.0


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

    def prepare(self) -> None:
        start_converter()

    def compile(self, model, options: CompileOptions) -> Artefact:
        _require_batch_one(model)
        output_names = [o.name for o in model.graph.outputs]
        fixed = None
        if options.edgetpu.fix:
            convert = lambda m: calibrate_and_convert(m, options, edgetpu=True)  # noqa: E731
            fixed = fix_for_edgetpu(model, convert, options.param_cache_bytes, options.calibration)
            converted, report = fixed.converted, fixed.report
        else:
            converted = calibrate_and_convert(model, options, edgetpu=True)
            report = analyse(read_tflite(converted.data), options.param_cache_bytes)
        data, lowered, info = converted[:3]
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
        if fixed is not None:
            edgetpu["fix"] = fixed.to_json()
        artefact = tflite_artefact(data, lowered, {**info, "edgetpu": edgetpu}, "int8",
                                   before_training=converted.before_training)
        artefact.files.update(files)
        return _with_cpu_tail(artefact, fixed.cut, output_names) if fixed and fixed.cut else artefact


def _with_cpu_tail(head: Artefact, cut: Cut, output_names: list[str]) -> Artefact:
    """The Edge TPU part followed by the tail, converted to float TFLite, as one artefact."""
    from edgeopt.lower import lower
    from edgeopt.tflite.convert import convert

    lowered = lower(cut.tail)
    data = convert(lowered, "float32")
    tail = tflite_artefact(data, lowered, {}, "float32")
    entry = {"file": TAIL_FILE, "nodes": [n.name for n in cut.tail.graph], "head_outputs": head.outputs,
             "inputs": tail.inputs, "outputs": tail.outputs}
    specs = {s["name"]: s for s in head.outputs + tail.outputs}
    outputs = [specs[name] for name in output_names]
    head_tolerance = {s["name"]: t for s, t in zip(head.outputs, head.tolerances)}
    crossing_atol = max(head_tolerance[name]["atol"] for name in cut.crossing)
    tail_tolerance = {"atol": TAIL_GAIN * crossing_atol + FLOAT_TOLERANCE["atol"], "rtol": FLOAT_TOLERANCE["rtol"]}
    litert = device_module("tflite", "litert_model")
    run_device = device_module("coral", "cpu_tail").chain(
        litert.load(head.files[head.main], head.inputs, head.outputs), litert.load(data, tail.inputs, tail.outputs),
        entry, outputs)
    head.info["edgetpu"]["cpu_tail"] = entry
    return Artefact(files={**head.files, TAIL_FILE: data}, main=head.main, inputs=head.inputs, outputs=outputs,
                    run=model_layout(run_device, head.inputs, outputs),
                    tolerances=[head_tolerance.get(name, tail_tolerance) for name in output_names],
                    info=head.info, weight_bytes=head.weight_bytes)
