"""Seconds and peak RSS per build stage, in the --json report and the human output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.cli import main

STAGES = ["load", "cleanup", "compile", "verify", "layers", "bundle"]  # layers: int8 builds only


def build(capsys, tmp_path, model, *flags: str) -> tuple[str, str]:
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(1).standard_normal((16, 1, 4, 4)).astype(np.float32))
    with pytest.raises(SystemExit) as info:
        main(["build", str(model), "--target", "tflite", "--quant", "int8", "--calib", str(tmp_path / "data.npz"),
              "--out", str(tmp_path / "dist"), *flags])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    return captured.out, captured.err


def test_json_report_has_seconds_and_peak_rss_per_stage(capsys, tmp_path, conv_gemm_path):
    out, _ = build(capsys, tmp_path, conv_gemm_path, "--json")
    report = json.loads(out)
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages) == STAGES
    assert all(s["seconds"] >= 0 for s in stages.values())  # cleanup of a 4-node net may round to 0.000
    assert stages["load"]["seconds"] > 0 and stages["verify"]["seconds"] > 0
    assert stages["compile"]["seconds"] > 0.1, stages  # lowering, a SavedModel, a converter process
    # a Python process with TensorFlow loaded holds well over 100 MB; a 350-parameter net adds little
    assert all(100 < s["peak_rss_mb"] < 4000 for s in stages.values()), stages
    compile_stage = stages["compile"]
    assert 100 < compile_stage["child_peak_rss_mb"] < 4000  # the converter's own process
    assert stages["load"]["child_peak_rss_mb"] is None
    assert "stages" not in report["manifest"]  # the bundled manifest stays byte-reproducible


def test_human_output_shows_each_stage_with_its_seconds_and_peak(capsys, tmp_path, conv_gemm_path):
    out, err = build(capsys, tmp_path, conv_gemm_path)
    assert "Build stages" in out
    for stage in STAGES:
        assert any(line.split("│")[1].strip() == stage for line in out.splitlines() if line.count("│") >= 3), stage
    assert "converter" in out  # the compile row names the converter child's peak
    assert "peak" in err and " MB)" in err  # the progress line of each step
