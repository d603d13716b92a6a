"""Every bad input of the acceptance list, through the real command: its exit code, a
one-paragraph message naming the culprit with a fix, and no bundle left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeopt.cli import main
from edgeopt.resources import data_dir


def make_case(case: str, tmp_path, digits) -> tuple[list[str], int, str]:
    """(extra build args, expected exit code, expected message fragment)."""
    model, calib = str(digits["model"]), str(digits["calib"])
    if case == "corrupt-file":
        (tmp_path / "broken.onnx").write_bytes(b"\x08\x01garbage" * 20)
        return [str(tmp_path / "broken.onnx")], 3, "broken.onnx: not a readable ONNX model"
    if case == "unknown-extension":
        (tmp_path / "model.tflite2").write_bytes(b"?")
        return [str(tmp_path / "model.tflite2")], 3, "unknown model format '.tflite2'"
    if case == "pickle-without-flag":
        torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pt")
        return [str(tmp_path / "whole.pt")], 3, "pickled whole module"
    if case == "dynamic-dims":
        program = torch.export.export(torch.nn.Linear(4, 2), (torch.zeros(2, 4),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, tmp_path / "dyn.pt2")
        return [str(tmp_path / "dyn.pt2")], 2, "without a static shape: input [?,4] (dynamic dims 0)"
    if case == "calibration-shape":
        np.savez(tmp_path / "c.npz", image=np.zeros((8, 16, 16), np.float32))
        return ["--quant", "int8", "--calib", str(tmp_path / "c.npz"), model], 9, "wants [1, 16, 16]"
    if case == "nan-in-calibration":
        x = np.load(calib)["image"].copy()
        x[3, 0, 5, 5] = np.nan
        np.savez(tmp_path / "c.npz", image=x)
        return ["--quant", "int8", "--calib", str(tmp_path / "c.npz"), model], 9, "1 NaN/Inf value(s)"
    if case == "unknown-profile":
        return ["--profile", "rpi3", model], 2, "unknown device profile 'rpi3'"
    if case == "invalid-profile-toml":
        text = (data_dir("device_profiles") / "rpi4.toml").read_text().replace("ram_mib = 4096", 'ram_mib = "4GB"')
        (tmp_path / "rpi4.toml").write_text(text)
        return ["--profile", str(tmp_path / "rpi4.toml"), model], 2, "[memory] ram_mib must be"
    if case == "budget-exceeded":
        text = (data_dir("device_profiles") / "rpi4.toml").read_text()
        (tmp_path / "small.toml").write_text(text.replace('"rpi4"', '"small"').replace("ram_mib = 4096", "ram_mib = 16"))
        return ["--profile", str(tmp_path / "small.toml"), model], 5, "against a budget of 8.0 MiB, over by"
    if case == "accuracy-gate":
        np.savez(tmp_path / "c.npz", image=np.load(calib)["image"] * 1000)
        return ["--quant", "int8", "--calib", str(tmp_path / "c.npz"), "--eval", str(digits["eval"]),
                "--max-drop", "0.01", model], 6, "more than --max-drop 1.00%"
    raise AssertionError(case)


CASES = ["corrupt-file", "unknown-extension", "pickle-without-flag", "dynamic-dims", "calibration-shape",
         "nan-in-calibration", "unknown-profile", "invalid-profile-toml", "budget-exceeded", "accuracy-gate"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, digits, capsys):
    args, code, fragment = make_case(case, tmp_path, digits)
    out = tmp_path / "dist"
    with pytest.raises(SystemExit) as info:
        main(["build", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert info.value.code == code, err
    message = err[err.index("error ("):]
    assert fragment in message and "fix:" in message and "Traceback" not in err
    assert len(message.strip().splitlines()) <= 2  # the error line and the fix line
    assert not out.exists() or not any(out.iterdir())
