"""The command line: exit codes, --json reports, the config file, and the human tables of a
real build and smoke test."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

import edgeopt
from edgeopt import cli
from edgeopt.cli import main
from edgeopt.profiles import load_profile


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and edgeopt.__version__ in out


def test_profiles(capsys):
    code, out, _ = run(capsys, "profiles", "list", "--json")
    names = [p["name"] for p in json.loads(out)["profiles"]]
    assert code == 0 and names == sorted(["coral-usb", "coral-devboard", "coral-devboard-mini", "rpi4", "rpi5",
                                          "rpi-zero2w", "android-arm64"])
    code, out, _ = run(capsys, "profiles", "show", "rpi4", "--json")
    assert code == 0 and json.loads(out)["profile"]["ram_bytes"] == 4096 * 2**20
    code, _, err = run(capsys, "profiles", "show", "rpi9")
    assert code == 2 and "unknown device profile 'rpi9'" in err


def test_inspect_json(capsys, conv_gemm_path):
    code, out, _ = run(capsys, "inspect", str(conv_gemm_path), "--json")
    analysis = json.loads(out)["analysis"]
    assert code == 0
    assert (analysis["params"], analysis["macs"], analysis["peak_activation"]["arena_bytes"]) == (350, 608, 256)


def test_inspect_table(capsys, conv_gemm_path):
    code, out, _ = run(capsys, "inspect", str(conv_gemm_path))
    assert code == 0 and "608" in out and "256 B" in out


@pytest.mark.parametrize("args, code, kind", [
    (["build", "model.xyz"], 3, "model"),
    (["build", "--target", "nope", "m.onnx"], 2, "usage"),
    (["build", "--input-shape", "x=1,a", "m.onnx"], 2, "usage"),
    (["smoke", "no-such-bundle.tar.gz"], 8, "board"),
])
def test_errors_as_json(capsys, tmp_path, monkeypatch, args, code, kind):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.xyz").write_text("?")
    got, out, err = run(capsys, *args, "--json")
    report = json.loads(out)
    assert got == code and report["ok"] is False and report["error"]["kind"] == kind
    assert "Traceback" not in out + err


def test_error_is_one_paragraph_without_traceback(capsys, tmp_path):
    code, out, err = run(capsys, "build", str(tmp_path / "missing.onnx"))
    assert code == 3 and "missing.onnx: no such file" in err and "Traceback" not in err


def test_build_from_config_file_flags_override(capsys, tmp_path, monkeypatch, digits):
    (tmp_path / "edgeopt.toml").write_text(f"""
[build]
model = "{digits['model']}"
quant = "int8"
calib = "{digits['calib']}"
eval = "{digits['eval']}"
profile = "rpi4"
max-drop = 0.01
out = "dist"
""")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "build", "--quant", "float32", "--json")
    assert code == 0, out
    manifest = json.loads(out)["manifest"]
    assert code == 0 and manifest["quant"] == "float32" and manifest["profile"] == "rpi4"
    assert (tmp_path / "dist" / "digits_cnn-onnx-rpi4" / "model.onnx").exists()

    code, out, _ = run(capsys, "smoke", "dist/digits_cnn-onnx-rpi4.tar.gz", "--runs", "3", "--json")
    assert code == 0 and json.loads(out)["outputs"][0]["ok"]

    code, out, _ = run(capsys, "inspect", "dist/digits_cnn-onnx-rpi4.tar.gz", "--json")
    report = json.loads(out)
    assert code == 0 and report["bundle"]["quant"] == "float32"
    assert report["analysis"]["macs"] == manifest["analysis"]["source"]["macs"]


def test_config_unknown_key(capsys, tmp_path, monkeypatch):
    (tmp_path / "edgeopt.toml").write_text('[build]\nquantize = "int8"\n')
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "build", "m.onnx")
    assert code == 2 and "unknown key 'quantize'" in err


def test_check_coral_on_a_tflite_from_another_tool(capsys, tmp_path):
    """A .tflite made by TF's own converter with a TRANSPOSE mid-graph: exit 4, the compiler's
    table, and where the Edge TPU part ends."""
    import tensorflow as tf

    from edgetpu.test_analyse import DENSE, conv, tflite

    path = tmp_path / "nchw.tflite"
    path.write_bytes(tflite(lambda x: tf.reshape(tf.transpose(conv(x), (0, 3, 1, 2)), (1, 768)) @ DENSE))
    code, out, _ = run(capsys, "check", "--target", "coral", str(path))
    assert code == 4
    assert "Number of operations that will run on Edge TPU: 1" in out  # the conv before it
    assert "the Edge TPU subgraph ends at op #1 TRANSPOSE" in out
    code, out, _ = run(capsys, "check", str(path), "--profile", "coral-devboard", "--json")
    report = json.loads(out)
    assert code == 4 and not report["ok"] and report["partition"] == 1 and not report["converted_by_edgeopt"]


def test_check_coral_converts_a_source_model_first(capsys, digits):
    code, out, _ = run(capsys, "check", str(digits["model"]), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["converted_by_edgeopt"]
    assert report["summary"]["cpu_ops"] == 0 and report["summary"]["off_chip_bytes"] == 0


def test_check_names_a_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "gone.tflite"))
    assert code == 3 and "gone.tflite: no such file" in err


@pytest.fixture
def wide(monkeypatch):
    """A terminal wide enough that no table cell wraps."""
    monkeypatch.setattr(cli.screen, "width", 250)


def table_row(out: str, *cells: str) -> bool:
    """Whether a line of a rich table holds exactly these cells, in this order."""
    pattern = r"[│┃]\s*" + r"\s*[│┃]\s*".join(map(re.escape, cells)) + r"\s*[│┃]"
    return re.search(pattern, out) is not None


def size_rows(bundle) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {row["check"]: row for row in manifest["size_check"]["rows"]}


def test_build_without_json_prints_passes_fidelity_and_size_check(capsys, tmp_path, wide, conv_gemm_path):
    """A float32 build of the tiny Conv-Relu-Flatten-Gemm net: its weights are the initializers'
    bytes, 4 x 350 = 1,400 B; its arena by hand (greedy by size, TFLite's planner): x 64 B,
    c, r, f 128 B each, y 40 B; c at 0, r (live with c) at 128, f (not live with c) at 0, x and
    y at 128: 256 B."""
    weights = sum(onnx.numpy_helper.to_array(t).nbytes for t in onnx.load(conv_gemm_path).graph.initializer)
    assert weights == 1400
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(5).standard_normal((16, 1, 4, 4)).astype(np.float32))
    code, out, err = run(capsys, "build", str(conv_gemm_path), "--quant", "float32", "--profile", "rpi4",
                         "--eval", str(tmp_path / "eval.npz"), "--out", str(tmp_path / "dist"), "--quiet")
    assert code == 0, err
    assert table_row(out, "pass", "changes", "params", "MACs")
    assert table_row(out, "fold-constants", "0", "350 → 350", "608 → 608")
    assert table_row(out, "cancel-transposes", "0", "350 → 350", "608 → 608")
    assert table_row(out, "held-out samples", "16") and table_row(out, "top-1 agreement", "100.00%")
    assert table_row(out, "SQNR", "exact") and table_row(out, "max abs error", "0")
    assert "label accuracy" not in out  # no labels given
    assert "Size check: onnx on rpi4" in out and "Edge TPU" not in out
    assert "weights 1.4 KiB + activation arena 256 B + onnx runtime 31.0 MiB; budget 50% of 4.0 GiB RAM" in out
    bundle = tmp_path / "dist" / "conv_gemm-onnx-rpi4"
    assert table_row(out, "storage", "1.8 KiB", "3.7 GiB", "3.7 GiB", "ok")
    rows = size_rows(bundle)
    assert rows["ram"]["used"] == weights + 256 + load_profile("rpi4").runtime_overhead_bytes("onnx")
    assert rows["storage"]["used"] == (bundle / "model.onnx").stat().st_size
    assert f"bundle {bundle}" in out and re.search(r"\(sha256 [0-9a-f]{64}\)", out)


def test_coral_build_prints_the_edge_tpu_log_and_smoke_its_table(capsys, tmp_path, wide, digits):
    """The digits CNN for coral: weights by hand are int8 kernels 3*3*1*16 + 3*3*16*32 +
    3*3*32*32 + 512*10 = 19,088 B, int32 biases (16+32+32+10)*4 = 360 B and the flatten's
    RESHAPE shape, 2 int32 = 8 B: 19,456 B. The arena is the source's at one byte per
    activation (full int8): the first conv's output and its ReLU, 16x16x16 each, live
    together: 8,192 B."""
    weights, arena = 19_088 + 360 + 8, 2 * 16 * 16 * 16
    code, out, err = run(capsys, "build", str(digits["model"]), "--target", "coral", "--profile", "coral-usb",
                         "--calib", str(digits["calib"]), "--eval", str(digits["eval"]), "--out",
                         str(tmp_path / "dist"), "--quiet")
    assert code == 0, err
    assert table_row(out, "fold-batchnorm", "0", "19,180 → 19,180", "484,352 → 484,352")
    assert table_row(out, "held-out samples", "300") and table_row(out, "top-1 agreement", "100.00%")
    sqnr = float(re.search(r"│ SQNR\s*│ ([0-9.]+) dB", out).group(1))
    assert 30 < sqnr < 60  # int8 of a 3-conv net: ~39 dB
    original, artefact = (float(v) for v in re.findall(r"label accuracy \((?:original|artefact)\)\s*│ ([0-9.]+)%", out))
    assert original >= 95 and original - artefact <= 1
    # the predicted compiler log, in the compiler's own words
    assert "Edge TPU Compiler version 16.0.384591198 (predicted by edgeopt; the compiler was not run)" in out
    assert "On-chip memory used for caching model parameters: 19.00KiB" in out
    assert "Off-chip memory used for streaming uncached model parameters: 0.00B" in out
    assert "Number of operations that will run on Edge TPU: 9\nNumber of operations that will run on CPU: 0" in out
    assert re.search(r"CONV_2D\s+3\s+Mapped to Edge TPU", out) and re.search(r"MAX_POOL_2D\s+2\s+Mapped to Edge TPU", out)
    # the size check, whose figures the manifest holds to the byte
    assert "Size check: coral on coral-usb" in out
    assert "weights 19.0 KiB + activation arena 8.0 KiB + coral runtime 11.0 MiB" in out
    assert table_row(out, "edgetpu-param-cache", "19.0 KiB", "6.9 MiB", "6.9 MiB", "ok")
    profile = load_profile("coral-usb")
    rows = size_rows(tmp_path / "dist" / "digits_cnn-coral-coral-usb")
    assert rows["ram"]["used"] == weights + arena + profile.runtime_overhead_bytes("coral")
    assert rows["edgetpu-param-cache"]["used"] == weights and rows["edgetpu-param-cache"]["budget"] == profile.param_cache_bytes
    assert rows["edgetpu-param-cache"]["informational"]

    code, out, err = run(capsys, "smoke", str(tmp_path / "dist" / "digits_cnn-coral-coral-usb"), "--runs", "3")
    assert code == 0, err
    assert "smoke test on local (ai-edge-litert (CPU), " in out  # no Edge TPU here: the CPU fallback
    assert table_row(out, "output", "max abs error", "atol", "status")
    cells = re.search(r"│ linear\s*│ (\S+)\s*│ (\S+)\s*│ ok\s*│", out)
    assert cells and float(cells.group(1)) <= float(cells.group(2))
    caption = " ".join(out.split())  # the caption wraps to the table's width
    latency = re.search(r"latency p50 ([0-9.]+) ms, p90 ([0-9.]+) ms \(3 runs, 1 thread\(s\)\); peak RSS ([0-9.]+) MiB",
                        caption)
    assert latency and 0 < float(latency.group(1)) <= float(latency.group(2)) < 1000 and float(latency.group(3)) > 10


def test_build_warns_when_eval_data_is_scaled_unlike_the_calibration(capsys, tmp_path, conv_gemm_path):
    """Pixels 0..255 beside normalised calibration data: the build goes on (exit 0) and says which
    flag, which input and both scales."""
    x = np.random.default_rng(6).standard_normal((16, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    np.savez(tmp_path / "eval.npz", x=128 + 64 * x)
    code, out, err = run(capsys, "build", str(conv_gemm_path), "--quant", "float32", "--calib", str(tmp_path / "calib.npz"),
                         "--eval", str(tmp_path / "eval.npz"), "--out", str(tmp_path / "dist"), "--quiet")
    assert code == 0, err
    text = " ".join((out + err).split())
    assert re.search(r"--eval looks scaled differently from --calib \(x: mean 13\d and standard deviation 6\d\.\d "
                     r"in \S+eval\.npz, 0\.0\d+ and 1\.0\d in \S+calib\.npz\)", text)
    assert "feed every data set normalised the same way" in text
    (manifest,) = (tmp_path / "dist").glob("*/manifest.json")
    (warning,) = json.loads(manifest.read_text())["warnings"]  # a CI job reading only the manifest sees it too
    assert warning.startswith("--eval looks scaled differently from --calib (x: mean 13")


def test_build_on_random_calibration_says_so_in_the_report_and_the_manifest(capsys, tmp_path, conv_gemm_path):
    code, out, err = run(capsys, "build", str(conv_gemm_path), "--quant", "int8", "--calib", "random",
                         "--out", str(tmp_path / "dist"), "--quiet")
    assert code == 0, err
    assert "--calib random: calibrating on random data" in " ".join((out + err).split())
    (manifest,) = (tmp_path / "dist").glob("*/manifest.json")
    manifest = json.loads(manifest.read_text())
    assert "NOT representative" in manifest["calibration"]["source"]
    assert manifest["warnings"][0].startswith("--calib random: calibrating on random data")
