"""The command line: exit codes, --json reports, the config file."""

from __future__ import annotations

import json

import pytest

import edgeopt
from edgeopt.cli import main


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
