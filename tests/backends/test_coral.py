"""The coral target end to end: Edge TPU-ready int8 of the digits CNN and a MobileNetV2-style
net, all ops predicted to map; bad inputs; and the edgetpu_compiler integration.

edgetpu_compiler cannot be installed here (Google's apt repo only), so the integration tests
run a stand-in executable that replays a real compiler log (tests/edgetpu/logs/, with sources)
and writes the output file the real one would: it tests our subprocess handling, flags, log
parsing and bundling, not the compiler.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgeopt.build import BuildRequest, build
from edgeopt.check import check_model
from edgeopt.edgetpu.compiler import EdgeTpuOptions
from edgeopt.errors import CompileError, UnsupportedOpError
from edgeopt.ir import ort_session
from edgeopt.lower import lower
from edgeopt.passes import run_passes
from edgeopt.progress import Progress
from edgeopt.smoke import smoke
from edgeopt.tflite.reader import read_tflite
from edgetpu.test_log import fixture
from lower.against_ort import GraphBuilder

QUIET = Progress(quiet=True)


def coral_build(source: dict, out: Path, **fields):
    request = dict(model=source["model"], target="coral", profile="coral-usb", calib=str(source["calib"]),
                   eval=str(source["eval"]), out=out)
    return build(BuildRequest(**{**request, **fields}), QUIET)


@pytest.fixture(scope="module")
def digits_coral(digits, tmp_path_factory):
    return coral_build(digits, tmp_path_factory.mktemp("coral"))


def test_digits_cnn_maps_entirely_with_nothing_off_chip(digits_coral):
    edgetpu = digits_coral.manifest["artefact"]["edgetpu"]
    model = read_tflite(digits_coral.artefact.files["model.tflite"])
    assert edgetpu["predicted"] == {"edgetpu_ops": len(model.operators), "cpu_ops": 0,
                                    "on_chip_bytes": model.constant_bytes, "off_chip_bytes": 0}
    assert edgetpu["compiled"] is None
    assert edgetpu["compile_command"] == "edgetpu_compiler -s -o . --timeout_sec 180 model.tflite"
    assert [s["dtype"] for s in digits_coral.artefact.inputs + digits_coral.artefact.outputs] == ["uint8", "uint8"]
    analysis = json.loads(digits_coral.artefact.files["edgetpu_analysis.json"])
    assert all(op["status"] == "Mapped to Edge TPU" for op in analysis["ops"])
    assert b"Number of operations that will run on CPU: 0" in digits_coral.artefact.files["edgetpu_analysis.log"]
    assert digits_coral.size_check.to_json()["rows"][-1]["check"] == "edgetpu-param-cache"


def test_digits_cnn_keeps_the_int8_fidelity_of_the_tflite_target(digits_coral, digits, tmp_path):
    tflite = build(BuildRequest(model=digits["model"], target="tflite", quant="int8", calib=str(digits["calib"]),
                                eval=str(digits["eval"]), out=tmp_path), QUIET).fidelity
    coral = digits_coral.fidelity
    assert coral.top1_agreement >= 0.99 and abs(coral.top1_agreement - tflite.top1_agreement) <= 0.005
    assert coral.sqnr_db == pytest.approx(tflite.sqnr_db, abs=1.0)
    assert coral.reference_accuracy - coral.artefact_accuracy <= 0.01


def run_runner(bundle: Path) -> tuple[dict, str]:
    """The bundle's own runner, as a device runs it: `python3 runner.py --json`; (report, stderr)."""
    done = subprocess.run([sys.executable, "runner.py", "--json", "--runs", "2"], cwd=bundle, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def assert_matches_golden(report: dict, bundle: Path):
    assert report["ok"] and report["golden_samples"] == len(np.load(bundle / "golden" / "input_0.npy"))
    assert [row["name"] for row in report["outputs"]] == ["linear"]
    assert all(row["ok"] and row["max_abs_error"] <= row["atol"] for row in report["outputs"])


def test_the_bundle_runs_on_the_cpu_with_a_warning_when_there_is_no_edge_tpu(digits_coral):
    report = smoke(digits_coral.bundle.directory, board="local", runs=5)
    assert report["ok"] and report["runtime"] == "ai-edge-litert (CPU)"
    report, stderr = run_runner(digits_coral.bundle.directory)
    assert "edgeopt: WARNING running model.tflite on the CPU, not the Edge TPU: the bundle has no compiled model " \
           "(finish with its compile command)" in stderr
    assert report["runtime"] == "ai-edge-litert (CPU)"
    assert_matches_golden(report, digits_coral.bundle.directory)


def test_mobilenet_v2_maps_entirely(mobilenet, tmp_path):
    result = coral_build(mobilenet, tmp_path, bias_correction=True)
    predicted = result.manifest["artefact"]["edgetpu"]["predicted"]
    assert predicted["cpu_ops"] == 0 and predicted["off_chip_bytes"] == 0 and predicted["edgetpu_ops"] > 20
    assert result.fidelity.top1_agreement >= 0.98


def test_a_batch_of_two_is_refused_before_any_output(tmp_path):
    g = GraphBuilder()
    g.conv(g.input("x", (2, 3, 8, 8)), 3, 4, pads=[1, 1, 1, 1], name="y")
    model = g.model(["y"])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8]))
    path = tmp_path / "batch2.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32))
    with pytest.raises(UnsupportedOpError, match="input 'x' has batch 2") as info:
        build(BuildRequest(model=path, target="coral", calib=str(tmp_path / "calib.npz"), out=tmp_path / "dist"), QUIET)
    assert info.value.exit_code == 4 and "--input-shape x=1,3,8,8" in info.value.hint
    assert not (tmp_path / "dist").exists()


def stand_in_compiler(tmp_path: Path, log: str, exit_code: int = 0) -> Path:
    """An executable that prints `log` (a real compiler log) and its own arguments, and writes
    <model>_edgetpu.tflite as edgetpu_compiler does (here: a copy of its input)."""
    script = tmp_path / "edgetpu_compiler"
    script.write_text(f"""#!{sys.executable}
import shutil, sys
print({log!r})
print("ARGS", " ".join(sys.argv[1:]))
if {exit_code} == 0:
    model = sys.argv[-1]
    shutil.copy(model, model[:-len(".tflite")] + "_edgetpu.tflite")
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture(scope="module")
def compiled_coral(digits, tmp_path_factory):
    """A coral build whose compile ran (the stand-in): the bundle holds model_edgetpu.tflite."""
    tmp_path = tmp_path_factory.mktemp("compiled")
    compiler = stand_in_compiler(tmp_path, fixture("fully_mapped_yolov7_tiny_search_delegate_1672.txt"))
    return coral_build(digits, tmp_path / "dist", edgetpu=EdgeTpuOptions(str(compiler), num_segments=2, timeout_s=60))


def test_the_compiler_is_run_and_its_log_bundled(compiled_coral):
    result = compiled_coral
    edgetpu = result.manifest["artefact"]["edgetpu"]
    assert edgetpu["compiled"] == ["model_edgetpu.tflite"]
    assert edgetpu["compiler"]["compiler_version"] == "16.0.384591198" and edgetpu["compiler"]["total_ops"] == 246
    log = (result.bundle.directory / "edgetpu_compiler.log").read_text()
    assert "ARGS -s -o . --timeout_sec 60 --num_segments 2 model.tflite" in log
    assert (result.bundle.directory / "model_edgetpu.tflite").read_bytes() == result.artefact.files["model.tflite"]


def test_a_compiled_bundle_without_an_edge_tpu_delegate_falls_back_to_the_cpu(compiled_coral):
    """The runner tries each runtime's Edge TPU delegate; here ai-edge-litert is installed and
    libedgetpu is not, so it names why, warns, and runs model.tflite on the CPU."""
    bundle = compiled_coral.bundle.directory
    report, stderr = run_runner(bundle)
    assert "edgeopt: no usable Edge TPU (ai-edge-litert: libedgetpu.so.1" in stderr
    assert "edgeopt: WARNING running model.tflite on the CPU, not the Edge TPU: see above" in stderr
    assert report["runtime"] == "ai-edge-litert (CPU)"
    assert_matches_golden(report, bundle)


def test_a_compiler_failure_is_exit_7_in_its_own_words_with_no_bundle(digits, tmp_path):
    compiler = stand_in_compiler(tmp_path, fixture("quantize_opcode_version3_879.txt"), exit_code=1)
    with pytest.raises(CompileError, match="Didn't find op for builtin opcode 'QUANTIZE' version '3'") as info:
        coral_build(digits, tmp_path / "dist", edgetpu=EdgeTpuOptions(str(compiler)))
    assert info.value.exit_code == 7 and not (tmp_path / "dist").exists()


def test_require_edgetpu_compiler_without_one_is_exit_7(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no edgetpu_compiler here (nor on this machine at all)
    with pytest.raises(CompileError, match="not installed") as info:
        coral_build(digits, tmp_path / "dist", edgetpu=EdgeTpuOptions(require_compiler=True))
    assert info.value.exit_code == 7 and "coral.ai/docs/edgetpu/compiler" in info.value.hint
    assert not (tmp_path / "dist").exists()


def zero_pad_net(pool_pads: list[int]) -> tuple[onnx.ModelProto, dict]:
    """What ZeroPadding2D / ZeroPad2d export to: Pad -> 3x3/2 Conv (SAME's pads) -> Relu -> Pad
    (`pool_pads`, ONNX order) -> 3x3/2 MaxPool -> Pad 1 -> 3x3 Conv."""
    g = GraphBuilder()
    h = g.node("Pad", g.input("x", (1, 3, 16, 16)), g.weight("same", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64)))
    h = g.node("Relu", g.conv(h, 3, 8, strides=[2, 2]))
    h = g.node("MaxPool", g.node("Pad", h, g.weight("pool_pads", np.array(pool_pads, np.int64))),
               kernel_shape=[3, 3], strides=[2, 2])
    y = g.conv(g.node("Pad", h, g.weight("one", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))), 8, 4, name="y")
    model = g.model([y])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4]))
    return model, g.feeds


@pytest.mark.parametrize("pool_pads, pads_left", [([0, 0, 0, 0, 0, 0, 1, 1], 0), ([0, 0, 1, 1, 0, 0, 1, 1], 1)],
                         ids=["same", "resnet-style"])
def test_zero_pads_map_and_fold_into_convs_and_pools(tmp_path, pool_pads, pads_left):
    """Each zero Pad folds where TF has the padding (SAME); the one a max pool cannot take
    (1 on both sides, as in ResNet) stays a PAD, which maps, never a PADV2, which does not."""
    model, feeds = zero_pad_net(pool_pads)
    folded, _ = run_passes(ir.from_proto(model))
    lowered = lower(folded)
    got = lowered({"x": np.transpose(feeds["x"], lowered.inputs[0].perm)})[0]
    want = ort_session(model.SerializeToString()).run(None, feeds)[0]
    np.testing.assert_allclose(np.transpose(got, np.argsort(lowered.outputs[0].perm)), want, rtol=1e-4, atol=1e-5)

    onnx.save(model, tmp_path / "zero_pads.onnx")
    report = check_model(tmp_path / "zero_pads.onnx").report
    ops = Counter(op.opcode for op in report.ops)
    assert ops["PADV2"] == 0 and ops["PAD"] == pads_left and ops["MAX_POOL_2D"] == 1
    assert report.compiles and report.mapped == len(report.ops)


def regnet_block(tmp_path: Path) -> dict:
    """A RegNet X block at group width 8 (1x1 conv, 3x3 conv in 2 groups, 1x1 conv, residual)."""
    g = GraphBuilder()
    x = g.input("x", (1, 16, 8, 8))
    h = g.node("Relu", g.conv(x, 16, 16, kernel=1))
    h = g.node("Relu", g.conv(h, 16, 16, group=2, pads=[1, 1, 1, 1]))
    g.node("Add", g.conv(h, 16, 16, kernel=1), x, name="y")
    return saved_source(g, tmp_path / "regnet_block.onnx", [1, 16, 8, 8], seed=1)


def saved_source(g: GraphBuilder, path: Path, output_shape: list[int], seed: int) -> dict:
    """The graph (one input x, one output y) saved with 32 calibration and 32 evaluation
    samples of x, as coral_build takes them."""
    model = g.model(["y"])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape))
    onnx.save(model, path)
    rng = np.random.default_rng(seed)
    for name in ("calib", "eval"):
        np.savez(path.parent / f"{name}.npz", x=rng.uniform(-1, 1, (32, *g.inputs["x"][1:])).astype(np.float32))
    return {"model": path, "calib": path.parent / "calib.npz", "eval": path.parent / "eval.npz"}


def test_grouped_conv_is_split_per_group_and_maps_entirely(tmp_path):
    """TF's grouped conv is CONV_2D version 6, which edgetpu_compiler 16 cannot parse; for coral
    each group is its own CONV_2D (version <= 5) between a SPLIT and a CONCATENATION."""
    result = coral_build(regnet_block(tmp_path), tmp_path / "dist")
    model = read_tflite(result.artefact.files["model.tflite"])
    convs = [op.version for op in model.operators if op.opcode == "CONV_2D"]
    assert len(convs) == 4 and max(convs) <= 5
    assert model.op_counts()["SPLIT"] == 1 and model.op_counts()["CONCATENATION"] == 1
    predicted = result.manifest["artefact"]["edgetpu"]["predicted"]
    assert predicted["cpu_ops"] == 0 and predicted["edgetpu_ops"] == len(model.operators)
    assert result.fidelity.sqnr_db >= 25


def token_block(tmp_path: Path) -> dict:
    """ConvNeXt's and LeViT's Edge TPU blockers in one net: a depthwise conv, channels moved
    last, LayerNorm over them, a Linear on every pixel, an uneven split of its features."""
    g = GraphBuilder()
    x = g.input("x", (1, 8, 6, 6))
    h = g.node("Transpose", g.conv(x, 8, 8, group=8, pads=[1, 1, 1, 1]), perm=[0, 2, 3, 1])
    h = g.node("LayerNormalization", h, g.weight("gamma", g.random(8, 0.5, 1.5)), g.weight("beta", g.random(8)),
               axis=-1, epsilon=1e-3)  # 8e-3 over the row: above what the converter fuses, so capped
    h = g.node("MatMul", g.node("Reshape", h, g.weight("tokens", np.array([1, 36, 8], np.int64))),
               g.weight("w", g.random((8, 12))))
    parts = g.node("Split", h, g.weight("sizes", np.array([2, 4, 6], np.int64)), axis=-1, outputs=3)
    g.node("Concat", *[g.node("Relu", p) for p in parts], axis=-1, name="y")
    return saved_source(g, tmp_path / "token_block.onnx", [1, 36, 12], seed=2)


def test_channel_layernorm_token_linear_and_uneven_split_map_entirely(tmp_path):
    """For coral, LayerNorm over channels goes through L2_NORMALIZATION (RSQRT has no kernel), a
    Linear over 36 tokens is a 1x1 CONV_2D (FULLY_CONNECTED maps with a 1-D output only) and an
    uneven split is SLICEs (SPLIT_V has no kernel); the tflite target keeps the plain forms."""
    source = token_block(tmp_path)
    result = coral_build(source, tmp_path / "dist")
    ops = Counter(read_tflite(result.artefact.files["model.tflite"]).op_counts())
    assert ops["L2_NORMALIZATION"] == 1 and ops["RSQRT"] == 0
    assert ops["FULLY_CONNECTED"] == 0 and ops["SPLIT_V"] == 0 and ops["SLICE"] == 3
    predicted = result.manifest["artefact"]["edgetpu"]["predicted"]
    assert predicted["cpu_ops"] == 0 and predicted["edgetpu_ops"] == sum(ops.values())
    assert result.fidelity.sqnr_db >= 25
    plain = build(BuildRequest(source["model"], target="tflite", quant="int8", calib=str(source["calib"]),
                               eval=str(source["eval"]), out=tmp_path / "tflite"), QUIET)
    plain_ops = read_tflite(plain.artefact.files["model.tflite"]).op_counts()
    assert plain_ops.get("L2_NORMALIZATION", 0) == 0 and plain_ops["FULLY_CONNECTED"] == 1
