"""The tflite target's bad inputs through the real command: exit code, a message naming the
culprit with a fix, and no bundle left behind."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.cli import main


def save_model(path, nodes, dtype=TensorProto.FLOAT, initializers=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", dtype, [1, 2, 4, 4])], list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return str(path)


def conv_then(tmp_path, node) -> str:
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 2, 1, 1)).astype(np.float32), "w")
    return save_model(tmp_path / "m.onnx", [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), node],
                      initializers=[weight, numpy_helper.from_array(np.array(3.0, np.float32), "three")])


def make_case(case: str, tmp_path, digits) -> tuple[list[str], int, str]:
    """(build args, expected exit code, expected message fragment)."""
    calib = np.load(digits["calib"])["image"]
    int8 = ["--quant", "int8", "--calib"]
    if case == "unsupported-op":
        model = conv_then(tmp_path, helper.make_node("Det", ["c"], ["y"], name="mix"))
        return [model], 4, "node 'mix' (Det, #2 of 2): no TFLite lowering for this op"
    if case == "not-int8-quantizable":
        model = conv_then(tmp_path, helper.make_node("Pow", ["c", "three"], ["y"], name="cube"))
        np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((8, 2, 4, 4)).astype(np.float32))
        return [*int8, str(tmp_path / "c.npz"), model], 4, "cannot quantize 1 op(s): POW (node 'cube')"
    if case == "no-tflite-kernel":
        model = save_model(tmp_path / "m.onnx", [helper.make_node("Add", ["x", "x"], ["y"], name="sum")], TensorProto.DOUBLE)
        return [model], 4, "TFLite has no builtin for TF op AddV2"
    if case == "nhwc-calibration-for-nchw":
        np.savez(tmp_path / "c.npz", image=np.transpose(calib, (0, 2, 3, 1)))
        return [*int8, str(tmp_path / "c.npz"), str(digits["model"])], 9, "NHWC"
    if case == "integer-calibration":
        np.savez(tmp_path / "c.npz", image=(calib * 255).astype(np.uint8))
        return [*int8, str(tmp_path / "c.npz"), str(digits["model"])], 9, "uint8"
    if case == "io-dtype-without-int8":
        return ["--io-dtype", "uint8", str(digits["model"])], 2, "does not support --io-dtype uint8"
    raise AssertionError(case)


CASES = ["unsupported-op", "not-int8-quantizable", "no-tflite-kernel", "nhwc-calibration-for-nchw",
         "integer-calibration", "io-dtype-without-int8"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, digits, capsys):
    args, code, fragment = make_case(case, tmp_path, digits)
    out = tmp_path / "dist"
    with pytest.raises(SystemExit) as info:
        main(["build", "--target", "tflite", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert info.value.code == code, err
    message = err[err.index("error ("):]
    assert fragment in message and "fix:" in message and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("flags, fragment", [(["--bias-correction"], "--bias-correction"),
                                             (["--calibration", "mse"], "--calibration mse")])
def test_onnx_target_refuses_tflite_only_flags(flags, fragment, digits, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["build", "--target", "onnx", "--quant", "int8", "--calib", str(digits["calib"]), "--out",
              str(tmp_path), *flags, str(digits["model"])])
    assert info.value.code == 2 and f"does not support {fragment}" in capsys.readouterr().err
