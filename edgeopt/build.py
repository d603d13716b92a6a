"""`edgeopt build`: frontend -> passes -> backend -> verify -> size check -> bundle.

Every check that can fail runs before the bundle is written, so a failed build leaves
no bundle behind.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import edgeopt
from edgeopt import passes, verify
from edgeopt.backends import Artefact, CompileOptions, get_backend
from edgeopt.bundle import MANIFEST, SCHEMA_VERSION, Bundle, manifest_bytes, sha256, write_bundle
from edgeopt.compress import compress, make_passes, measure_row
from edgeopt.data import RANDOM, Dataset, Preprocess, image_layout, load_data, scale_mismatch, split
from edgeopt.edgetpu.analyse import DEFAULT_CACHE_BYTES
from edgeopt.edgetpu.compiler import EdgeTpuOptions
from edgeopt.errors import DataError, UsageError
from edgeopt.frontends import FrontendOptions, LoadedModel, load_model
from edgeopt.ir import input_specs
from edgeopt.ir.analysis import Analysis, analyze
from edgeopt.ir.arena import plan_arena
from edgeopt.profiles import Profile, SizeCheck, enforce, load_profile, size_check
from edgeopt.progress import Progress
from edgeopt.resources import data_dir
from edgeopt.train import TrainConfig

RANDOM_EVAL_SAMPLES = 16
ROUNDINGS = ("nearest", "learned")


@dataclass
class BuildRequest:
    model: Path
    target: str = "onnx"
    quant: str | None = None  # None: the target's default (float32; coral int8)
    io_dtype: str | None = None
    calibration_method: str = "minmax"
    bias_correction: bool = False
    rounding: str = "nearest"
    rounding_steps: int = 100
    sparse_encoding: bool = True  # tflite: pruned weights sparse-encoded where that pays and runs
    profile: str | None = None
    calib: str | None = None
    eval: str | None = None
    max_drop: float | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    module: str | None = None
    trust_pickle: bool = False
    preprocess: dict = field(default_factory=dict)
    out: Path = Path("dist")
    name: str | None = None
    golden_samples: int = 8
    edgetpu: EdgeTpuOptions = field(default_factory=EdgeTpuOptions)
    pixel_input: bool = False  # the model takes pixels 0..255 and normalises them itself (needs preprocess)
    training: TrainConfig | None = None  # --qat
    train_data: str | None = None  # default: the calibration data
    compression: list[tuple[str, dict]] = field(default_factory=list)  # (pass, options), e.g. ("prune", {...})
    fine_tuning: TrainConfig | None = None  # after each compression pass; None: no fine-tuning
    tune_trials: int | None = None  # arm-cpu: MetaSchedule tuning
    tune_seconds: float | None = None
    tvm_tracker: str | None = None  # host:port:key: tune on the board (edgeopt.tvm.tracker)


@dataclass
class BuildResult:
    bundle: Bundle
    manifest: dict
    artefact: Artefact
    fidelity: verify.Fidelity
    size_check: SizeCheck | None
    source_analysis: Analysis
    artefact_analysis: Analysis | None
    # seconds and peak RSS per stage: in the --json report, not in the manifest (byte-reproducible)
    stages: list[dict] = field(default_factory=list)
    compression: list[dict] = field(default_factory=list)  # the per-pass table with latencies, for the report


def _source_digest(path: Path) -> str:
    if path.is_file():
        return sha256(path.read_bytes())
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _datasets(request: BuildRequest, loaded: LoadedModel, preprocess: Preprocess | None, progress: Progress):
    """(calibration, evaluation): --eval, else a split of --calib, else random inputs."""
    specs = input_specs(loaded.model)
    calib = load_data(request.calib, specs, preprocess) if request.calib else None
    if request.calib == RANDOM:
        progress.warn("--calib random: calibrating on random data; int8 accuracy will not be representative")
    if request.quant == "int8" and calib is None:
        raise DataError("an int8 build needs calibration data (representative inputs)",
                        hint="Pass --calib data.npz (a few hundred real samples), or --calib random to accept poor ranges.")
    if request.eval:
        return calib, load_data(request.eval, specs, preprocess)
    if calib is not None and calib.size >= 2 and request.calib != RANDOM:
        return split(calib)
    progress.warn("no --eval data: verifying on random inputs (output error only, no accuracy)")
    return calib, load_data(RANDOM, specs, samples=RANDOM_EVAL_SAMPLES, seed=1)


def _warn_mismatched(request: BuildRequest, calib: Dataset | None, evaluation: Dataset, train: Dataset | None,
                     progress: Progress) -> None:
    """Data sets on another scale than the calibration data are a mistake nothing else catches."""
    if request.calib in (None, RANDOM):
        return
    for flag, text, data in (("--eval", request.eval, evaluation), ("--train-data", request.train_data, train)):
        for found in scale_mismatch(calib, data) if text not in (None, RANDOM) else []:
            progress.warn(f"{flag} looks scaled differently from --calib ({found}); "
                          "feed every data set normalised the same way")


def _pixel_input(loaded: LoadedModel, preprocess: Preprocess):
    """(the source model fed pixels, the pass that folds the normalisation into the IR)."""
    specs = [s for s in input_specs(loaded.model) if len(s.shape) == 4]
    if len(specs) != 1 or image_layout(specs[0], preprocess) != "nchw":
        raise UsageError("--pixel-input needs one channels-first (NCHW) image input",
                         hint="Channels-last sources (Keras) are not supported yet; normalise on the device.")
    name = specs[0].name

    def reference(feeds: dict) -> list:
        return loaded.reference({**feeds, name: preprocess.normalise(feeds[name], "nchw")})

    fold = passes.make_pass("pixel-input", {"scale": preprocess.scale, "mean": list(preprocess.mean),
                                            "std": list(preprocess.std)})
    return reference, [fold]


def _device_layout(array: np.ndarray, spec: dict) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(array, spec["perm"])) if spec.get("perm") else array


def _golden(artefact: Artefact, data: Dataset, batch: int, samples: int) -> tuple[dict[str, bytes], dict]:
    """Golden float inputs and expected outputs, in the device's layout (see manifest perm)."""
    samples = min(samples, data.size)  # a small --calib split may hold fewer held-out samples
    count = max(batch, samples - samples % batch)
    read = data.take(slice(0, count))
    inputs = [read[s["name"]] for s in artefact.inputs]
    feeds = [dict(zip((s["name"] for s in artefact.inputs), (x[i:i + batch] for x in inputs))) for i in range(0, count, batch)]
    outputs = [np.concatenate(parts) for parts in zip(*(artefact.run(f) for f in feeds))]
    files = {f"golden/input_{i}.npy": _npy(_device_layout(x, s)) for i, (x, s) in enumerate(zip(inputs, artefact.inputs))}
    files.update({f"golden/output_{i}.npy": _npy(_device_layout(y, s))
                  for i, (y, s) in enumerate(zip(outputs, artefact.outputs))})
    entry = {
        "inputs": [f"golden/input_{i}.npy" for i in range(len(inputs))],
        "outputs": [f"golden/output_{i}.npy" for i in range(len(outputs))],
        "samples": len(inputs[0]),
        "tolerances": artefact.tolerances,
    }
    return files, entry


def _target_files(backend) -> dict[str, bytes]:
    """The device-side half: the shared runner core, the target's runner and README, and the
    files it borrows from other targets."""
    root = data_dir("targets")
    python = backend.runner.endswith(".py")
    files = {"edgeopt_runner.py": (root / "common" / "edgeopt_runner.py").read_bytes()} if python else {}
    files.update({p.name: p.read_bytes() for p in sorted((root / backend.name).iterdir()) if p.is_file()})
    files.update({Path(p).name: (root / p).read_bytes() for p in backend.runner_files})
    return files


def _versions() -> dict:
    import importlib.metadata as metadata

    found = {}
    for package in ("onnx", "onnx-ir", "onnxruntime", "torch", "tensorflow", "tf2onnx", "ai-edge-litert", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _compile_options(request: BuildRequest, backend, calib: Dataset | None, profile: Profile | None = None,
                     train: Dataset | None = None, preprocess: Preprocess | None = None) -> CompileOptions:
    """Check the quantization flags against what the target offers, fill in its defaults."""
    def refuse(flag: str, value, choices) -> None:
        raise UsageError(f"target {request.target} does not support {flag} {value}",
                         hint=f"Choose one of: {', '.join(choices)}" if choices else f"Drop {flag} for this target.")

    if request.quant not in backend.quant_modes:
        refuse("--quant", request.quant, backend.quant_modes)
    int8 = request.quant == "int8"
    if request.io_dtype is not None and (not int8 or request.io_dtype not in backend.io_dtypes):
        refuse("--io-dtype", request.io_dtype, backend.io_dtypes if int8 else ())
    if request.calibration_method not in backend.calibrations:
        refuse("--calibration", request.calibration_method, backend.calibrations)
    if request.bias_correction and not (int8 and backend.bias_correction):
        refuse("--bias-correction", "", ())
    if request.rounding not in ROUNDINGS:
        refuse("--rounding", request.rounding, ROUNDINGS)
    if request.rounding != "nearest" and not (int8 and backend.bias_correction):
        refuse("--rounding", request.rounding, ())
    if request.rounding_steps < 0:
        raise UsageError(f"--rounding-steps {request.rounding_steps}: give 0 or more")
    if request.training is not None and not (int8 and backend.bias_correction):
        refuse("--qat", "", ())
    cache = profile.param_cache_bytes if profile is not None and profile.param_cache_bytes else DEFAULT_CACHE_BYTES
    pixel_mean = None
    if request.pixel_input and preprocess is not None:
        pixel_mean = tuple(m / preprocess.scale for m in preprocess.mean)
    for flag, given in (("--tune-trials/--tune-time", request.tune_trials or request.tune_seconds),
                        ("--tvm-tracker", request.tvm_tracker)):
        if given and request.target != "arm-cpu":
            refuse(flag, "", ())
    for flag, value in (("--tune-trials", request.tune_trials), ("--tune-time", request.tune_seconds)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} {value}: give a number above 0")
    if request.tvm_tracker is not None:
        check_tracker(request)
    if request.target == "arm-cpu" and profile is not None and profile.tvm_target is None:
        raise UsageError(f"device profile {profile.name} has no TVM target for --target arm-cpu",
                         hint="Add tvm_target to its [cpu] table (a TVM tag such as 'raspberry-pi/4b-aarch64', or "
                              "a table with kind = 'llvm', mtriple, mcpu, mattr).")
    return CompileOptions(request.quant, calib, request.io_dtype or backend.default_io_dtype,
                          request.calibration_method, request.bias_correction, request.rounding,
                          request.rounding_steps, cache, request.edgetpu, training=request.training,
                          training_data=train, pixel_mean=pixel_mean,
                          tvm_target=profile.tvm_target if profile is not None else None,
                          device_triple=profile.cpu.get("triple") if profile is not None else None,
                          tune_trials=request.tune_trials, tune_seconds=request.tune_seconds,
                          tvm_tracker=request.tvm_tracker, sparse_encoding=request.sparse_encoding)


def check_tracker(request: BuildRequest) -> None:
    """--tvm-tracker: with a tuning budget, well formed, and a board behind it, before slow work."""
    from edgeopt.tvm import tracker

    if not (request.tune_trials or request.tune_seconds):
        raise UsageError("--tvm-tracker says where to tune, not how long",
                         hint="Add --tune-trials N or --tune-time S.")
    tracker.check(tracker.parse(request.tvm_tracker))


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    progress = progress or Progress()
    backend = get_backend(request.target)
    request = replace(request, quant=request.quant or backend.default_quant)
    _compile_options(request, backend, None)  # fail on bad flags before any slow work
    compression = make_passes(request.compression)
    if compression and request.fine_tuning is not None and not (request.calib or request.train_data):
        raise UsageError(f"--{compression[0].name} fine-tunes the compressed model, on data it has none of",
                         hint="Give --calib (or --train-data) samples, or --no-fine-tune to compress without it.")
    backend.prepare()
    profile: Profile | None = load_profile(request.profile) if request.profile else None
    if profile is not None:
        profile.require_target(request.target)
    preprocess = Preprocess.parse(request.preprocess) if request.preprocess else None
    if request.pixel_input:
        if preprocess is None:
            raise UsageError("--pixel-input needs the normalisation to fold in",
                             hint="Add --preprocess scale=...,mean=...,std=... as the model was trained "
                                  "(e.g. scale=0.00392157 mean=0.485,0.456,0.406 std=0.229,0.224,0.225).")
        preprocess = replace(preprocess, pixel_input=True)
    options = FrontendOptions(request.input_shapes, request.trust_pickle, request.module)

    with progress.step(f"Loading {request.model}", "load"):
        loaded = load_model(request.model, options)
    source_analysis = analyze(loaded.model)
    reference, requested = loaded.reference, []
    if request.pixel_input:
        reference, requested = _pixel_input(loaded, preprocess)
    calib, evaluation = _datasets(request, loaded, preprocess, progress)
    with progress.step("Cleanup passes", "cleanup"):
        model, reports = passes.run_passes(loaded.model, requested, int8=request.quant == "int8")
    batch = input_specs(model)[0].shape[0]
    train = load_data(request.train_data, input_specs(loaded.model), preprocess) if request.train_data else None
    _warn_mismatched(request, calib, evaluation, train, progress)
    rows, teacher = [], None
    if compression and (request.fine_tuning is not None or request.training is not None):
        # fine-tuning and --qat both distil from the model before compression
        from edgeopt.train.trainer import onnx_teacher
        teacher = onnx_teacher(model)
    if compression:
        with progress.step("Compressing", "compress"):
            model, compressed, rows = compress(model, compression, reference, evaluation, batch, request.fine_tuning,
                                               train or calib, teacher, progress.note)
        reports += compressed
    with progress.step(f"Compiling for {request.target} ({request.quant})", "compile"):
        options = _compile_options(request, backend, calib, profile, train, preprocess)
        options.note, options.teacher = progress.note, teacher
        artefact = backend.compile(model, options)
    with progress.step(f"Verifying on {evaluation.size} held-out samples", "verify"):
        fidelity = verify.measure(reference, artefact.run, evaluation, batch)
        if artefact.before_training is not None:
            fidelity.before_training = verify.measure(reference, artefact.before_training, evaluation, batch).to_json()
    if artefact.layers is not None:
        with progress.step("Measuring the int8 error layer by layer", "layers"):
            fidelity.layers = artefact.layers(evaluation.batches(batch))
    if rows:
        rows.append(measure_row(f"{request.target} {request.quant}", artefact.files[artefact.main], model,
                                artefact.run, fidelity, next(evaluation.batches(batch))))
    verify.gate(fidelity, request.max_drop)
    artefact_analysis = analyze(artefact.model) if artefact.model is not None else None
    sizes = None
    if profile is not None:
        measured = artefact_analysis or source_analysis
        weight_bytes = artefact.weight_bytes if artefact.weight_bytes is not None else measured.weight_bytes
        arena = measured.arena.size
        if artefact_analysis is None and request.quant == "int8":  # a full-int8 .tflite: 1-byte activations
            arena = plan_arena(model.graph, float_itemsize=1).size
        sizes = size_check(profile, target=request.target, artefact_bytes=artefact.size,
                           weight_bytes=weight_bytes, arena_bytes=arena,
                           param_bytes=artefact.info.get("edgetpu", {}).get("parameter_bytes"),
                           runtime_bytes=artefact.info.get("runtime_bytes"))
        enforce(sizes)

    name = f"{request.name or request.model.stem}-{request.target}-{profile.name if profile else 'any'}"
    golden_files, golden = _golden(artefact, evaluation, batch, request.golden_samples)
    files = {**artefact.files, **_target_files(backend), **golden_files}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "edgeopt_version": edgeopt.__version__,
        "tool_versions": _versions(),
        "name": name,
        "target": request.target,
        "profile": profile.name if profile else None,
        "quant": request.quant,
        "source": {"file": request.model.name, "format": loaded.format, "sha256": _source_digest(request.model)},
        "artefact": {"file": artefact.main, "bytes": artefact.size, "sha256": sha256(artefact.files[artefact.main]),
                     **artefact.info},
        "runner": backend.runner,
        "inputs": artefact.inputs,
        "outputs": artefact.outputs,
        "preprocessing": preprocess.to_json() if preprocess else None,
        "calibration": {"source": calib.source, "samples": calib.size} if calib and request.quant != "float32" else None,
        "evaluation": {"source": evaluation.source, "samples": evaluation.size},
        "passes": [r.to_json() for r in reports],
        "compression": [row.to_json(latency=False) for row in rows] or None,
        "analysis": {"source": source_analysis.to_json(),
                     "artefact": artefact_analysis.to_json() if artefact_analysis else None},
        "size_check": sizes.to_json() if sizes else None,
        "fidelity": fidelity.to_json(),
        "warnings": progress.warnings,
        "golden": golden,
        "files": {path: sha256(data) for path, data in sorted(files.items())},
    }
    files[MANIFEST] = manifest_bytes(manifest)
    with progress.step(f"Writing bundle {request.out / name}", "bundle"):
        bundle = write_bundle(request.out, name, files)
    return BuildResult(bundle, manifest, artefact, fidelity, sizes, source_analysis, artefact_analysis,
                       [cost.to_json() for cost in progress.stages], [row.to_json() for row in rows])
