"""End to end on the example digits CNN: build, verify, size-check, bundle, smoke.
The bad-input cases run through the CLI in test_bad_inputs.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.build import BuildRequest, build
from edgeopt.errors import BoardError, DataError, UsageError
from edgeopt.progress import Progress
from edgeopt.smoke import smoke

QUIET = Progress(quiet=True)


def request(digits, out: Path, **overrides) -> BuildRequest:
    fields = dict(model=digits["model"], target="onnx", quant="int8", profile="rpi4", calib=str(digits["calib"]),
                  eval=str(digits["eval"]), max_drop=0.01, out=out)
    return BuildRequest(**{**fields, **overrides})


@pytest.fixture(scope="module")
def int8_build(digits, tmp_path_factory):
    return build(request(digits, tmp_path_factory.mktemp("dist")), QUIET)


def test_int8_build_verifies_within_one_point(int8_build):
    f = int8_build.fidelity
    assert f.samples == 300
    assert f.reference_accuracy >= 0.95
    assert f.reference_accuracy - f.artefact_accuracy <= 0.01
    assert f.top1_agreement >= 0.98 and f.sqnr_db > 25


def test_bundle_contents_and_manifest(int8_build):
    directory = int8_build.bundle.directory
    assert directory.name == "digits_cnn-onnx-rpi4"
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.md", "edgeopt_runner.py", "golden", "manifest.json", "model.onnx", "runner.py"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["target"] == "onnx" and manifest["profile"] == "rpi4"
    assert manifest["source"]["format"] == "exported-program" and len(manifest["source"]["sha256"]) == 64
    assert manifest["inputs"][0]["shape"] == [1, 1, 16, 16]
    assert manifest["calibration"]["samples"] == 200
    assert manifest["artefact"]["bytes"] == (directory / "model.onnx").stat().st_size
    assert manifest["size_check"]["rows"][0]["check"] == "storage"
    assert [p["name"] for p in manifest["passes"]] == ["fold-constants", "remove-identity", "gather-to-reshape",
                                                       "drop-softmax-nan-guard", "fold-batchnorm", "fold-pads",
                                                       "cancel-transposes", "collapse-reshape-chains"]
    assert manifest["golden"]["samples"] == 8
    weights = manifest["analysis"]["artefact"]["param_bytes"]
    assert weights.get("int8", 0) > 0.7 * manifest["analysis"]["source"]["param_bytes"]["float32"] / 4


def test_rebuild_is_byte_identical(int8_build, digits, tmp_path):
    again = build(request(digits, tmp_path), QUIET)
    assert again.bundle.sha256 == int8_build.bundle.sha256


def test_float32_build_matches_exactly(digits, tmp_path):
    result = build(request(digits, tmp_path, quant="float32", calib=None, max_drop=0.0), QUIET)
    assert result.fidelity.max_abs_error < 1e-4
    assert result.fidelity.top1_agreement == 1.0
    assert result.manifest["calibration"] is None


def test_smoke_passes_then_detects_tampering(int8_build, tmp_path):
    report = smoke(int8_build.bundle.tarball, runs=5)
    assert report["ok"] and report["runtime"].startswith("onnxruntime ") and report["golden_samples"] == 8
    assert len(report["outputs"]) == 1 and report["outputs"][0]["ok"]
    assert report["outputs"][0]["max_abs_error"] <= report["outputs"][0]["atol"]
    latency = report["latency_ms"]
    assert latency["runs"] == 5 and 0 < latency["p50"] <= latency["p90"] < 1000
    assert 10 < report["peak_rss_mib"] < 4096
    copy = tmp_path / "bundle"
    shutil.copytree(int8_build.bundle.directory, copy)
    expected = np.load(copy / "golden" / "output_0.npy")
    np.save(copy / "golden" / "output_0.npy", expected + 1.0)
    with pytest.raises(BoardError, match="differ from the golden outputs") as info:
        smoke(copy, runs=1)
    assert info.value.exit_code == 8


def assert_no_bundle(out: Path):
    assert not out.exists() or not any(out.iterdir())


def test_int8_without_calibration(digits, tmp_path):
    with pytest.raises(DataError, match="needs calibration data"):
        build(request(digits, tmp_path, calib=None), QUIET)
    assert_no_bundle(tmp_path)


def test_unsupported_quant(digits, tmp_path):
    with pytest.raises(UsageError, match="does not support --quant float16"):
        build(request(digits, tmp_path, quant="float16"), QUIET)
    assert_no_bundle(tmp_path)


def test_the_runner_saves_its_outputs_on_request(int8_build, tmp_path):
    """--save-outputs: what the device computed on the golden inputs, as the golden files are named."""
    directory = int8_build.bundle.directory
    done = subprocess.run([sys.executable, "runner.py", "--json", "--runs", "1", "--save-outputs", str(tmp_path)],
                          cwd=directory, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    saved, golden = np.load(tmp_path / "output_0.npy"), np.load(directory / "golden" / "output_0.npy")
    assert saved.shape == golden.shape == (8, 10) and saved.dtype == golden.dtype
    assert np.abs(saved.astype(np.float64) - golden).max() == json.loads(done.stdout)["outputs"][0]["max_abs_error"]
