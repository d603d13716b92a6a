"""`make bench`: does TFLite's sparse encoding pay for a pruned int8 model (issue 13)?

EfficientNet-Lite0 (trained on ImageNet) is pruned by magnitude (`--prune S`, no refit, no
fine-tuning: the encoding depends only on where the zeros are) at 0.5 and 0.8, then converted
to int8 twice by the TFLite converter on the same lowering and calibration crops: dense, and
with `Optimize.EXPERIMENTAL_SPARSITY`. For each: bytes raw and gzipped, whether LiteRT's
default CPU path (XNNPACK) runs it, latency there and on LiteRT's builtin kernels (one
thread, the models in turns), and the outputs' largest difference from the dense model's on an eval crop.
edgeopt keeps the dense encoding: this measures why.

    python scripts/bench_sparse_encoding.py --out bench-results/sparse_encoding.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench_imagenet import litert_latency_ms, trained_lite0
from edgeopt.build import BuildRequest, build
from edgeopt.compress.stage import gzip_size
from edgeopt.progress import Progress

SPARSITIES = (0.5, 0.8)
CALIBRATION = 64  # crops the converter calibrates on


def pruned_ir(source: Path, sparsity: float, work: Path):
    """The cleaned-up IR with `sparsity` of each layer's weights zeroed by magnitude."""
    import onnx_ir as ir

    result = build(BuildRequest(source, out=work / f"dist{sparsity}", target="onnx", quant="float32",
                                compression=[("prune", {"sparsity": sparsity, "refit": False})], fine_tuning=None),
                   Progress(quiet=True))
    return ir.load(result.bundle.directory / "model.onnx")


def int8_tflite(model, calib: np.ndarray, sparse: bool) -> bytes:
    import tensorflow as tf

    from edgeopt.lower import lower

    lowered = lower(model, False)
    name = lowered.inputs[0].name
    converter = tf.lite.TFLiteConverter.from_concrete_functions([lowered.function()], lowered)
    converter.optimizations = [tf.lite.Optimize.DEFAULT] + ([tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else [])
    converter.representative_dataset = lambda: (lowered.tf_arrays({name: x[None]}) for x in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def run(data: bytes, image: np.ndarray, xnnpack: bool) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = given["quantization"]
    x = np.clip(np.round(image.transpose(1, 2, 0)[None] / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(taken["index"]).astype(np.int32)


def xnnpack_runs(data: bytes, image: np.ndarray) -> str:
    try:
        run(data, image, xnnpack=True)
    except RuntimeError as exc:
        return f"no: {str(exc).splitlines()[0][:200]}"
    return "yes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/sparse_encoding.json"))
    args = parser.parse_args()
    import torch

    net = trained_lite0()
    calib, image = net.calib[:CALIBRATION], net.evaluation[0]
    report = {"model": net.about, "calibration_crops": CALIBRATION}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.export.save(torch.export.export(net.model, (torch.from_numpy(net.calib[:1]),)), work / "lite0.pt2")
        for sparsity in SPARSITIES:
            model = pruned_ir(work / "lite0.pt2", sparsity, work)
            models = {encoding: int8_tflite(model, calib, encoding == "sparse") for encoding in ("dense", "sparse")}
            builtin, xnnpack = litert_latency_ms(models, xnnpack=False), litert_latency_ms(models)
            dense_out = run(models["dense"], image, xnnpack=False)
            rows = {}
            for encoding, data in models.items():
                rows[encoding] = {"bytes": len(data), "gzip_bytes": gzip_size(data), "xnnpack_runs": xnnpack_runs(data, image),
                                  "latency_ms_p50_builtin_1thread": builtin[encoding],
                                  "latency_ms_p50_xnnpack_1thread": xnnpack[encoding],
                                  "max_output_difference_int8_steps": int(np.abs(run(data, image, False) - dense_out).max())}
            rows["sparse_over_dense"] = {key: round(rows["sparse"][key] / rows["dense"][key], 3)
                                         for key in ("bytes", "gzip_bytes", "latency_ms_p50_builtin_1thread",
                                                     "latency_ms_p50_xnnpack_1thread")}
            report[f"--prune {sparsity:g}"] = rows
            print(f"--prune {sparsity:g}: {json.dumps(rows)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
