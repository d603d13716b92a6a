"""`tflite` target: LiteRT/TFLite on phones and Linux boards.

IR -> TF (edgeopt.lower, NHWC) -> TFLiteConverter. int8 is full-integer with per-channel
weights; activation ranges (min/max, percentile or MSE) are measured on the float lowering and
carried as fake-quant ranges (edgeopt.quant.ranges; the converter's own calibration gives a
tensor read only by an ADD or MUL that op's output range, which wipes out a transformer's
residual branches: 9.7 against 24.4 dB on a 2-layer DistilBERT), masked attention scores get
ranges of their own (edgeopt.quant.masks); `--rounding learned` chooses each int8 weight's
rounding (edgeopt.quant.rounding) and `--bias-correction` moves each conv/FC bias to cancel
the mean error of int8 weight rounding, layer by layer; `--qat` then trains the weights and
ranges with int8 simulated (edgeopt.train).
"""

from __future__ import annotations

import importlib.util
from itertools import islice
from typing import NamedTuple

import numpy as np

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.data import Batches
from edgeopt.errors import DataError
from edgeopt.ir import unshare_initializers
from edgeopt.quant.layers import layer_errors
from edgeopt.quant.pixels import centre, pixel_convs
from edgeopt.resources import data_dir
from edgeopt.tflite.acceptance import accept
from edgeopt.tflite.convert import IO_DTYPES, QUANT_MODES
from edgeopt.tflite.isolated import start_converter
from edgeopt.tflite.reader import TfliteModel, read_tflite

MODEL_FILE = "model.tflite"
WEIGHT_FIX_SAMPLES = 64  # calibration samples that bias correction and learned rounding walk
FLOAT_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}
DYNAMIC_TOLERANCE = {"atol": 1e-2, "rtol": 1e-2}  # activations quantized on the fly: kernels may round apart
QUANT_STEPS_TOLERANCE = 2  # int8 outputs: other kernels may round differently by a step or two
DEVICE_THREADS = 1  # the bundle runner's default (--threads 1)


def device_module(target: str, name: str):
    """A module of the device-side runner (targets/<target>/<name>.py), so the host runs
    exactly the code that ships in the bundle."""
    path = data_dir("targets") / target / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"edgeopt_device_{target}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _io_specs(ports, details) -> list[dict]:
    specs = []
    for port in ports:
        d = details[port.tf_name]
        q = d["quantization_parameters"]
        quantized = np.dtype(d["dtype"]).kind in "iu" and len(q["scales"]) == 1 and np.dtype(port.dtype).kind == "f"
        specs.append({
            "name": port.name, "device_name": port.tf_name, "dtype": np.dtype(d["dtype"]).name,
            "shape": [int(s) for s in d["shape"]], "layout": port.layout,
            "perm": list(port.perm) if list(port.perm) != sorted(port.perm) else None,
            "quantization": {"scale": float(q["scales"][0]), "zero_point": int(q["zero_points"][0])} if quantized else None,
        })
    return specs


def _output_step(model: TfliteModel, spec: dict, tensor: int) -> float | None:
    """The quantization step of an output: its own, or the int8 tensor its DEQUANTIZE reads."""
    if spec["quantization"]:
        return spec["quantization"]["scale"]
    producer = model.producer(tensor)
    if producer is not None and producer.opcode == "DEQUANTIZE":
        scale = model.tensor(producer.inputs[0]).scale
        return max(scale) if scale else None
    return None


def model_layout(run_device, inputs: list[dict], outputs: list[dict]):
    """A run that takes and returns ONNX-layout arrays, around one in the device's layout."""
    def run(feeds):
        device = {s["name"]: np.transpose(feeds[s["name"]], s["perm"]) if s["perm"] else feeds[s["name"]] for s in inputs}
        return [np.transpose(y, np.argsort(s["perm"])) if s["perm"] else y for y, s in zip(run_device(device), outputs)]

    return run


def _host_run(litert, data: bytes, lowered, interpreter=None):
    """An ONNX-layout run of a .tflite on the host, with the I/O specs of that very model
    (each model's own input and output quantization)."""
    interpreter = interpreter or litert.open_model(data, threads=DEVICE_THREADS)
    runner = interpreter.get_signature_runner()
    inputs = _io_specs(lowered.inputs, runner.get_input_details())
    outputs = _io_specs(lowered.outputs, runner.get_output_details())
    return model_layout(litert.load(data, inputs, outputs, threads=DEVICE_THREADS), inputs, outputs), inputs, outputs


def tflite_artefact(data: bytes, lowered, info: dict, quant: str, before_training: bytes | None = None) -> Artefact:
    """Artefact of a converted model: I/O specs from the interpreter, and a host executor that
    takes and returns ONNX-layout float arrays (transposing to and from the TF layout).

    The host loads the model as the bundle's runner does on the device (litert_model, its
    default thread count, XNNPACK on), and first runs it once: a model the device's
    interpreter would refuse stops the build here (CompileError), not at verification."""
    litert = device_module("tflite", "litert_model")
    runtime = litert.interpreter_class()[1]
    interpreter = accept(data, lambda model: litert.open_model(model, threads=DEVICE_THREADS), lowered)
    run, inputs, outputs = _host_run(litert, data, lowered, interpreter)
    output_details = interpreter.get_signature_runner().get_output_details()
    model = read_tflite(data)
    tolerances = []
    for spec in outputs:
        step = _output_step(model, spec, output_details[spec["device_name"]]["index"]) if quant == "int8" else None
        tolerances.append({"atol": QUANT_STEPS_TOLERANCE * step, "rtol": 0.0} if step
                          else DYNAMIC_TOLERANCE if quant == "dynamic" else FLOAT_TOLERANCE)
    ops = model.op_counts()
    info = {"runtime": runtime, "ops": dict(sorted(ops.items())),
            "transposes": {"count": ops.get("TRANSPOSE", 0), "needed_by": lowered.transposes()}, **info}
    layers = (lambda feeds: layer_errors(lowered, data, feeds)) if quant == "int8" else None
    baseline = None
    if before_training is not None:  # its own I/O quantization: QAT may have moved the output range
        baseline = _host_run(litert, before_training, lowered)[0]
    return Artefact(files={MODEL_FILE: data}, main=MODEL_FILE, inputs=inputs, outputs=outputs, run=run,
                    tolerances=tolerances, info=info, weight_bytes=model.constant_bytes, layers=layers,
                    before_training=baseline)


class Converted(NamedTuple):
    data: bytes  # the .tflite
    lowered: object  # the LoweredModel it was converted from
    info: dict  # for the manifest
    before_training: bytes | None = None  # --qat: the int8 model as calibrated, for the report


def calibrate_and_convert(model, options: CompileOptions, edgetpu: bool = False) -> Converted:
    """Lower, choose int8 ranges and biases as asked, convert. Shared with the coral target,
    which lowers into the forms the Edge TPU compiler maps (see edgeopt.lower.lower)."""
    from edgeopt.lower import lower
    from edgeopt.quant.bias_correction import bias_fix
    from edgeopt.quant.rounding import rounding_fix
    from edgeopt.quant.sequential import compose, walk
    from edgeopt.quant.masks import mask_ranges
    from edgeopt.quant.ranges import activation_ranges
    from edgeopt.tflite.convert import convert, representative_data

    start_converter()  # its TF import runs while we lower
    if options.training is not None:  # each layer trains its own copy of a shared constant
        unshare_initializers(model)
    lowered = lower(model, edgetpu)
    info: dict = {"quant": options.quant}
    if options.quant != "int8":
        return Converted(_encoded(model, lowered, options, edgetpu, info), lowered, info)
    if options.calibration is None:
        raise DataError("int8 needs calibration data", hint="Pass --calib data.npz (or --calib random, loudly worse).")
    batch = lowered.inputs[0].shape[0]
    feeds = Batches(options.calibration, batch)
    method = options.calibration_method
    ranges = activation_ranges(lowered, feeds, method)
    centred: list[str] = []  # convs reading pixels, their bias moved by their rounding error times the mean pixel
    if options.pixel_mean is not None:  # scale 1: every pixel value exactly on the int8 (or uint8) input grid
        image = next(p for p in lowered.inputs if len(p.shape) == 4)
        ranges[image.key] = (0.0, 255.0)
        channels = image.shape[1]
        firsts = pixel_convs(lowered, image.key, channels)
        centred = [step.node for step in firsts]
        if options.rounding != "learned":  # learned rounding centres them itself, against the float layer
            mean_pixel = np.broadcast_to(np.asarray(options.pixel_mean, np.float64), (channels,))
            for step in firsts:
                centre(step, mean_pixel)
        info["pixel_input"] = {"centred_convs": centred}
    info.update({"io_dtype": options.io_dtype, "calibration": method, "calibration_samples": len(feeds) * batch})
    corrections, learned = [], []
    fixes = ([rounding_fix(learned, options.rounding_steps, options.note, centred=centred)]
             if options.rounding == "learned" else []) + \
        ([bias_fix(corrections)] if options.bias_correction else [])
    if fixes:
        walk(lowered, list(islice(feeds, WEIGHT_FIX_SAMPLES)), ranges, compose(*fixes))
    if options.bias_correction:
        info["bias_correction"] = {c.node: round(c.max_shift, 6) for c in corrections}
    if options.rounding == "learned":
        info["rounding"] = {"method": "learned", "steps": options.rounding_steps, "layers": {
            r.node: {"changed": r.changed, "weights": r.weights, "error_nearest": round(r.error_nearest, 8),
                     "error_learned": round(r.error_learned, 8)} for r in learned}}
    lowered.set_ranges({**ranges, **mask_ranges(model, lowered, feeds)})
    representative = representative_data(lowered, feeds)
    before_training = None
    if options.training is not None:
        before_training = convert(lowered, "int8", representative=representative, io_dtype=options.io_dtype)
        from edgeopt.train.trainer import onnx_teacher, train
        from edgeopt.train.writeback import write_back
        teacher = options.teacher or onnx_teacher(model)
        report = train(lowered, teacher, options.training_data or options.calibration, options.training, options.note,
                       held=centred)
        written = write_back(model, lowered, edgetpu)
        info["training"] = {**report.to_json(), "written_back": len(written.constants), "not_written_back": written.skipped}
    data = _encoded(model, lowered, options, edgetpu, info, representative=representative, io_dtype=options.io_dtype)
    return Converted(data, lowered, info, before_training)


def _encoded(model, lowered, options: CompileOptions, edgetpu: bool, info: dict, **convert_options) -> bytes:
    """The converted model; for a pruned one, in TFLite's sparse encoding where that pays and
    runs (edgeopt.tflite.sparse_encoding; the Edge TPU compiler takes dense weights only)."""
    from edgeopt.tflite.convert import convert
    from edgeopt.tflite.sparse_encoding import choose, worth_trying

    data = convert(lowered, options.quant, **convert_options)
    if edgetpu or not options.sparse_encoding or not worth_trying(model):
        return data
    options.note("trying TFLite's sparse encoding for the pruned weights")
    data, info["sparse_encoding"] = choose(data, lambda: convert(lowered, options.quant, sparse=True, **convert_options))
    return data


class TfliteBackend(Backend):
    name = "tflite"
    quant_modes = QUANT_MODES
    io_dtypes = IO_DTYPES
    default_io_dtype = "int8"
    calibrations = ("minmax", "percentile", "mse")
    bias_correction = True
    description = "LiteRT/TFLite on phones and Linux boards (float32, float16, dynamic-range or full int8)"

    def prepare(self) -> None:
        start_converter()

    def compile(self, model, options: CompileOptions) -> Artefact:
        converted = calibrate_and_convert(model, options)
        return tflite_artefact(converted.data, converted.lowered, converted.info, options.quant, converted.before_training)
