"""The block rearrangements, Einsum, GridSample and TopK/ArgMax heads through the whole
tflite build: the converter keeps every one as TFLite builtins (no Flex op a device lacks),
LiteRT runs them under XNNPACK, and float32 and int8 match onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite
from lower.against_ort import SAME_PADS, GraphBuilder

SQNR_DB = {"float32": 100, "int8": 30}  # measured 135 and 36 dB on 16 held-out samples


def rearranging_net() -> onnx.ModelProto:
    """Conv -> SpaceToDepth -> DepthToSpace (CRD) -> GridSample -> Col2Im of 2x2 patches ->
    Conv -> Einsum of the channel Gram matrix -> Gemm logits, their TopK and ArgMax."""
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS))
    x = g.node("SpaceToDepth", x, blocksize=2)
    x = g.node("DepthToSpace", x, blocksize=2, mode="CRD")
    x = g.node("GridSample", x, g.weight("grid", g.random((1, 6, 6, 2), -1.1, 1.1)), align_corners=0)
    patches = g.node("Reshape", g.node("SpaceToDepth", x, blocksize=2), g.weight("to_cols", np.array([1, 32, 9])))
    x = g.node("Col2Im", patches, g.weight("image_shape", np.array([6, 6])), g.weight("block", np.array([2, 2])),
               strides=[2, 2])
    x = g.node("Relu", g.conv(x, 8, 16, pads=SAME_PADS))
    tokens = g.node("Reshape", x, g.weight("to_tokens", np.array([1, 16, 36])))
    gram = g.node("Einsum", tokens, tokens, equation="bcn,bdn->bcd")
    features = g.node("Einsum", gram, g.weight("pool", g.random((16,))), equation="bcd,d->bc")
    logits = g.gemm(features, 16, 10, name="logits")
    top = g.node("TopK", logits, g.weight("k", np.array([3])), name="top", outputs=2)
    model = g.model([logits, top[0], g.node("ArgMax", logits, axis=1, keepdims=0)], opset=18)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)  # the checker wants output shapes


@pytest.mark.parametrize("quant", ["float32", "int8"])
def test_every_op_converts_to_builtins_and_matches(tmp_path, quant):
    onnx.save(rearranging_net(), tmp_path / "net.onnx")
    rng = np.random.default_rng(0)
    for name, count in (("calib", 64), ("eval", 16)):
        np.savez(tmp_path / f"{name}.npz", image=rng.standard_normal((count, 3, 8, 8)).astype(np.float32))
    result = build(BuildRequest(model=tmp_path / "net.onnx", target="tflite", quant=quant, out=tmp_path / "dist",
                                calib=str(tmp_path / "calib.npz"), eval=str(tmp_path / "eval.npz")),
                   Progress(quiet=True))
    assert result.fidelity.sqnr_db > SQNR_DB[quant]
    ops = {op.opcode for op in read_tflite(result.artefact.files["model.tflite"]).operators}
    assert {"SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "GATHER", "BATCH_MATMUL", "TOPK_V2", "ARG_MAX"} <= ops
    assert not any(op.startswith("CUSTOM") or op.startswith("FLEX") for op in ops)


def test_patch_fold_parses_for_the_edge_tpu_compiler(tmp_path):
    """MobileViTV2's fold of 2x2 patches: with a batch of one its TRANSPOSE is 5-D (version 5),
    not 6-D (version 6, which edgetpu_compiler 16 cannot parse: the whole model was refused)."""
    g = GraphBuilder(seed=5)
    x = g.conv(g.input("image", (1, 3, 8, 8)), 3, 4, pads=SAME_PADS)
    patches = g.node("Reshape", g.node("SpaceToDepth", x, blocksize=2), g.weight("to_cols", np.array([1, 16, 16])))
    x = g.node("Col2Im", patches, g.weight("image_shape", np.array([8, 8])), g.weight("block", np.array([2, 2])),
               strides=[2, 2])
    onnx.save(onnx.shape_inference.infer_shapes(g.model([g.conv(x, 4, 4, pads=SAME_PADS)])), tmp_path / "fold.onnx")
    np.savez(tmp_path / "calib.npz", image=np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32))
    result = build(BuildRequest(model=tmp_path / "fold.onnx", target="coral", out=tmp_path / "dist",
                                calib=str(tmp_path / "calib.npz")), Progress(quiet=True))
    versions = {op.opcode: op.version for op in read_tflite(result.artefact.files["model.tflite"]).operators}
    assert versions["TRANSPOSE"] <= 5  # and the build went on: a version the compiler cannot parse is exit 7
    assert result.artefact.info["edgetpu"]["predicted"]["edgetpu_ops"] >= 3  # QUANTIZE, CONV_2D, SPACE_TO_DEPTH
