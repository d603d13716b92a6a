"""--edgetpu-fix end to end on a net built to keep ops off the Edge TPU (LeakyReLU, GELU, a
wide fully connected layer over a small parameter cache, a Softmax over channels at the end):
fixed, it maps whole, streams less, keeps its int8 fidelity, and its bundle runs head then tail.
A Softmax with a weighted layer after it is named, not cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.build import BuildRequest, build
from edgeopt.cli import main
from edgeopt.edgetpu.compiler import EdgeTpuOptions
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.progress import Progress
from edgeopt.report import edgetpu_fix_lines
from edgeopt.smoke import smoke
from edgeopt.verify import sqnr_db
from torch_models import EdgeTpuTroubleNet

CACHE_KIB = 64  # the wide layer's 128 KiB of int8 weights cannot all stay on chip
SAMPLES = 64


def _source(directory: Path, conv_after_softmax: bool) -> dict:
    torch.manual_seed(0)
    net = EdgeTpuTroubleNet(conv_after_softmax).eval()
    torch.export.save(torch.export.export(net, (torch.randn(1, 3, 8, 8),)), directory / "net.pt2")
    images = np.random.default_rng(0).standard_normal((SAMPLES, 3, 8, 8)).astype(np.float32)
    np.savez(directory / "calib.npz", image=images)
    profile = (Path(__file__).parents[2] / "device_profiles" / "coral-usb.toml").read_text()
    profile = profile.replace('name = "coral-usb"', 'name = "small-cache"').replace(
        "param_cache_kib = 7065", f"param_cache_kib = {CACHE_KIB}")
    (directory / "small-cache.toml").write_text(profile)
    return {"model": directory / "net.pt2", "calib": directory / "calib.npz", "images": images,
            "profile": directory / "small-cache.toml"}


def _build(source: dict, out: Path, fix: bool):
    return build(BuildRequest(source["model"], target="coral", profile=str(source["profile"]), calib=str(source["calib"]),
                              out=out, edgetpu=EdgeTpuOptions(fix=fix)), Progress(quiet=True))


def _sqnr_per_output(source: dict, result) -> list[float]:
    reference = load_model(source["model"], FrontendOptions()).reference
    pairs = [(reference({"image": x[None]}), result.artefact.run({"image": x[None]})) for x in source["images"]]
    return [sqnr_db(np.concatenate([r[k] for r, _ in pairs]), np.concatenate([a[k] for _, a in pairs]))
            for k in range(2)]


@pytest.fixture(scope="module")
def trouble(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trouble")
    source = _source(directory, conv_after_softmax=False)
    return source, _build(source, directory / "plain", fix=False), _build(source, directory / "fixed", fix=True)


def test_unfixed_the_edge_tpu_part_ends_at_the_first_leaky_relu(trouble):
    _, plain, _ = trouble
    predicted = plain.manifest["artefact"]["edgetpu"]["predicted"]
    assert predicted["edgetpu_ops"] == 2 and predicted["cpu_ops"] > 5  # QUANTIZE, CONV_2D; then LEAKY_RELU
    assert "fix" not in plain.manifest["artefact"]["edgetpu"]


def test_fixed_every_op_maps_and_the_report_says_what_changed(trouble):
    _, _, fixed = trouble
    edgetpu = fixed.manifest["artefact"]["edgetpu"]
    assert edgetpu["predicted"]["cpu_ops"] == 0 and edgetpu["predicted"]["edgetpu_ops"] > 20
    fix = edgetpu["fix"]
    assert fix["changes"] == [
        "LeakyRelu node 'node_leaky_relu' -> PRelu(x, 0.1) (exact)",
        "Gelu (Erf form) node 'node_gelu' -> x * Sigmoid(1.702 x) (approximation)",
        "Gemm node 'node_linear' (512x256, 131,072 int8 weight bytes) -> 16 pieces of at most 16 columns + Concat",
        "cut off 1 node(s) from 'node_softmax' (Softmax) on: they run on the CPU in float, fed conv2d_2"]
    assert fix["not_fixed"] is None
    first, last = fix["stages"]
    assert first["edgetpu_ops"] < first["total_ops"] and last["edgetpu_ops"] == last["total_ops"]
    assert last["off_chip_bytes"] < first["off_chip_bytes"] == 512 * 256 + 256 * 4  # the wide layer, streamed whole
    assert 40 < fix["float_cost"]["sqnr_db"] < 60 and fix["float_cost"]["top1_agreement"] >= 0.98
    assert any(line.startswith("  float cost on 51 calibration samples: SQNR") for line in edgetpu_fix_lines(fix))


def test_fixed_keeps_the_int8_fidelity_and_the_float_tail_gains(trouble):
    source, plain, fixed = trouble
    (plain_tail, plain_wide), (fixed_tail, fixed_wide) = _sqnr_per_output(source, plain), _sqnr_per_output(source, fixed)
    assert fixed_tail > plain_tail + 5  # the Softmax now runs in float
    assert fixed_wide > plain_wide - 2.0  # GELU's approximation costs ~1.4 dB on the GELU-fed layer


def test_the_bundle_chains_the_cpu_tail_after_the_edge_tpu_part(trouble):
    _, _, fixed = trouble
    tail = fixed.manifest["artefact"]["edgetpu"]["cpu_tail"]
    assert tail["file"] == "cpu_tail.tflite" and tail["nodes"] == ["node_softmax"]
    assert [s["name"] for s in tail["inputs"]] == ["conv2d_2"] and [s["name"] for s in fixed.manifest["outputs"]] == [
        "softmax", "linear"]
    assert (fixed.bundle.directory / "cpu_tail.tflite").is_file()
    report = smoke(fixed.bundle.directory, board="local", runs=3)
    assert report["ok"] and report["runtime"].endswith("(CPU) + CPU tail")


def test_an_unmappable_op_with_weights_after_it_is_named_not_cut(tmp_path):
    fixed = _build(_source(tmp_path, conv_after_softmax=True), tmp_path / "dist", fix=True)
    fix = fixed.manifest["artefact"]["edgetpu"]["fix"]
    assert "cpu_tail" not in fixed.manifest["artefact"]["edgetpu"]
    assert fix["not_fixed"].startswith("node 'node_softmax' SOFTMAX (Operation is otherwise supported")
    assert "1 layer(s) with weights follow it (first 'node_conv2d_3')" in fix["not_fixed"]
    assert fixed.manifest["artefact"]["edgetpu"]["predicted"]["cpu_ops"] == 3  # SOFTMAX, CONV_2D, QUANTIZE


def test_the_flag_is_refused_for_other_targets(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", str(tmp_path / "x.onnx"), "--target", "tflite", "--edgetpu-fix"])
    assert exit_info.value.code == 2 and "--edgetpu-* flags are for --target coral" in capsys.readouterr().err
