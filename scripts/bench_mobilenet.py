"""`make bench`, part two: MobileNetV2 at ImageNet size (3.5 M parameters, 224x224) through
`edgeopt build --target tflite --quant int8` with 128 calibration photos.

Measures build time, fidelity against the float PyTorch model (top-1 agreement, SQNR), file
size against its int8 weights, op counts, and LiteRT/XNNPACK latency on one thread. When a
side venv with onnx2tf exists (scripts/setup_sidevenv.sh; never our dependency), the same
ONNX model goes through onnx2tf's int8 path and every figure is reported as a ratio.

No model hub here, so the net is randomly initialised and its BatchNorm statistics are
re-estimated on the photos, which gives data-like activation ranges; scikit-image's sample
photos (random crops and flips) are the calibration and evaluation images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from bench_onnx2tf import onnx2tf_int8, run_tflite
from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite
from edgeopt.verify import sqnr_db

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "cat", "stereo_motorcycle")
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet normalisation
SIDE = 224
CALIBRATION, EVALUATION = 128, 200
LATENCY_ROUNDS, LATENCY_RUNS = 5, 20


def photo_crops(count: int, seed: int) -> np.ndarray:
    """[count, 3, 224, 224] float32: random crops (30-100% of the short side), flips, normalised."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        images.append(image[0] if isinstance(image, tuple) else image)
    crops = []
    for i in range(count):
        image = images[i % len(images)][..., :3]
        side = int(min(image.shape[:2]) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, image.shape[0] - side + 1), rng.integers(0, image.shape[1] - side + 1)
        crop = Image.fromarray(image[top:top + side, left:left + side]).resize((SIDE, SIDE), Image.BILINEAR)
        array = np.asarray(crop, np.float32) / 255
        array = array[:, ::-1] if rng.random() < 0.5 else array
        crops.append(((array - MEAN) / STD).transpose(2, 0, 1))
    return np.stack(crops).astype(np.float32)


def imagenet_mobilenet(images: np.ndarray) -> torch.nn.Module:
    from mobilenet_v2 import MobileNetV2

    torch.manual_seed(0)
    model = MobileNetV2()
    for module in model.modules():  # re-estimate BatchNorm statistics on the photos
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), 32):
            model(torch.from_numpy(images[start:start + 32]))
    return model.eval()


def litert_latency_ms(models: dict[str, bytes]) -> dict[str, float]:
    """Median invoke() time per model, one thread, LiteRT's default CPU path (XNNPACK).

    The models take turns, round after round, so machine noise hits them alike."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name, data in models.items():
        interpreter = Interpreter(model_content=data, num_threads=1)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        interpreters[name] = interpreter
    times = {name: [] for name in models}
    for _ in range(LATENCY_ROUNDS):
        for name, interpreter in interpreters.items():
            for _ in range(LATENCY_RUNS):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append(time.perf_counter() - start)
    return {name: round(float(np.median(t) * 1000), 2) for name, t in times.items()}


def int8_weight_bound(model) -> float:
    """The size target: 1.05 x (int8 conv/FC weights + int32 biases) + 32 KiB."""
    weights = sum(model.tensor(op.inputs[1]).data_bytes for op in model.operators
                  if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    biases = sum(model.tensor(op.inputs[2]).data_bytes for op in model.operators
                 if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 2)
    return 1.05 * (weights + biases) + 32 * 1024


def figures(data: bytes, outputs: np.ndarray, reference: np.ndarray, build_s: float) -> dict:
    model = read_tflite(data)
    ops = model.op_counts()
    return {
        "build_s": round(build_s, 2),
        "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
        "sqnr_db": round(float(sqnr_db(reference, outputs)), 2),
        "bytes": len(data),
        "size_bound_bytes": int(int8_weight_bound(model)),
        "within_size_bound": len(data) <= int8_weight_bound(model),
        "transpose_quantize_dequantize_ops": sum(ops[k] for k in ("TRANSPOSE", "QUANTIZE", "DEQUANTIZE")),
        "ops": dict(sorted(ops.items())),
    }


def bench_mobilenet(work: Path) -> dict:
    calib, evaluation = photo_crops(CALIBRATION, seed=1), photo_crops(EVALUATION, seed=2)
    model = imagenet_mobilenet(calib)
    with torch.no_grad():
        reference = np.concatenate([model(torch.from_numpy(evaluation[i:i + 50])).numpy() for i in range(0, EVALUATION, 50)])
    source = work / "mobilenet_v2.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(calib[:1]),)), source)
    np.savez(work / "calib.npz", image=calib)
    np.savez(work / "eval.npz", image=evaluation)
    report = {"params": sum(p.numel() for p in model.parameters()), "calibration_samples": CALIBRATION,
              "eval_samples": EVALUATION, "variants": {}}
    models = {}
    for name, fields in (("int8", {}), ("int8+bias-correction", {"bias_correction": True}),
                         ("int8+mse+bias-correction", {"bias_correction": True, "calibration_method": "mse"})):
        start = time.perf_counter()
        result = build(BuildRequest(source, target="tflite", quant="int8", calib=str(work / "calib.npz"),
                                    eval=str(work / "eval.npz"), out=work / "dist", **fields), Progress(quiet=True))
        elapsed = time.perf_counter() - start
        outputs = np.concatenate([result.artefact.run({"image": evaluation[i:i + 1]})[0] for i in range(EVALUATION)])
        report["variants"][name] = figures(result.artefact.files["model.tflite"], outputs, reference, elapsed)
        models[name] = result.artefact.files["model.tflite"]
    report["build_under_60s"] = report["variants"]["int8"]["build_s"] < 60
    report["input_quantization_only"] = input_quantization_only(model, models["int8"], evaluation, reference)
    report["onnx2tf"] = compare_onnx2tf(model, calib, evaluation, reference, work, report["variants"], models)
    for name, latency in litert_latency_ms(models).items():
        (report["onnx2tf"] if name == "onnx2tf" else report["variants"][name])["latency_ms_p50_1thread"] = latency
    if "figures" in report["onnx2tf"]:
        report["onnx2tf"]["versus_edgeopt"]["latency_ratio_edgeopt_over_onnx2tf"] = round(
            report["variants"]["int8"]["latency_ms_p50_1thread"] / report["onnx2tf"]["latency_ms_p50_1thread"], 3)
    return report


def input_quantization_only(model, data: bytes, evaluation: np.ndarray, reference: np.ndarray) -> dict:
    """The float model on inputs rounded to the int8 model's input grid: a ceiling on the
    fidelity of any int8 conversion (ours or onnx2tf's), since every one quantizes its input."""
    details = read_tflite(data)
    scale, zero = details.tensor(details.inputs[0]).scale[0], details.tensor(details.inputs[0]).zero_point[0]
    rounded = (np.clip(np.round(evaluation / scale + zero), -128, 127) - zero) * scale
    with torch.no_grad():
        outputs = model(torch.from_numpy(rounded.astype(np.float32))).numpy()
    return {"top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
            "sqnr_db": round(float(sqnr_db(reference, outputs)), 2)}


def compare_onnx2tf(model, calib, evaluation, reference, work: Path, ours: dict, models: dict) -> dict:
    """onnx2tf's int8 of the same model and data, and our figures as ratios/differences to it."""
    onnx_path = work / "mobilenet_v2.onnx"
    torch.onnx.export(model, (torch.from_numpy(calib[:1]),), onnx_path, input_names=["image"],
                      output_names=["logits"], dynamo=True, verbose=False)
    files = [onnx_path, *work.glob("mobilenet_v2.onnx.data")]
    converted = onnx2tf_int8(files, calib, work / "onnx2tf")
    if converted is None:
        return {"skipped": "no onnx2tf side venv (scripts/setup_sidevenv.sh, then ONNX2TF_VENV=...)"}
    data, seconds = converted
    models["onnx2tf"] = data
    theirs = figures(data, run_tflite(data, evaluation), reference, seconds)
    best = ours["int8+bias-correction"]
    return {**theirs, "figures": "onnx2tf 1.29.24 full-integer int8", "versus_edgeopt": {
        "build_time_ratio_edgeopt_over_onnx2tf": round(ours["int8"]["build_s"] / seconds, 3),
        "top1_agreement_points_bias_correction_minus_onnx2tf": round(100 * (best["top1_agreement"]
                                                                           - theirs["top1_agreement"]), 2),
        "sqnr_db_bias_correction_minus_onnx2tf": round(best["sqnr_db"] - theirs["sqnr_db"], 2),
    }}
