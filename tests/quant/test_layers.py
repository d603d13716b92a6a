"""The per-layer int8 error report: a layer given a range 1000x too wide is the one it names,
the layers around it keep their SQNR, and the report travels through the build, the
manifest and `edgeopt inspect --layers`."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.cli import main
from edgeopt.lower import lower
from edgeopt.quant.layers import layer_errors, worst
from edgeopt.quant.ranges import activation_ranges
from edgeopt.tflite.convert import convert, representative_data
from lower.against_ort import SAME_PADS, GraphBuilder

SAMPLES = 8


def three_convs():
    g = GraphBuilder(seed=1)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"), name="relu")
    x = g.conv(x, 8, 8, pads=SAME_PADS, name="coarse")
    x = g.conv(x, 8, 4, pads=SAME_PADS, name="last")
    return g.model([x])


@pytest.fixture(scope="module")
def report():
    lowered = lower(ir.from_proto(three_convs()))
    rng = np.random.default_rng(0)
    feeds = [{"image": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(32)]
    ranges = activation_ranges(lowered, feeds, "minmax")
    coarse = next(step.outputs[0] for step in lowered.steps if step.node == "coarse")
    low, high = ranges[coarse]
    ranges[coarse] = (low * 1000, high * 1000)  # an int8 step 1000x too coarse: most values round to 0
    lowered.set_ranges(ranges)
    data = convert(lowered, "int8", representative=representative_data(lowered, feeds))
    return layer_errors(lowered, data, feeds, SAMPLES)


def test_every_layer_and_the_input_get_a_row(report):
    assert [(r["op"], r["node"]) for r in report] == [("INPUT", "input image"), ("CONV_2D", "relu"),
                                                       ("CONV_2D", "coarse"), ("CONV_2D", "last")]


def test_the_layer_with_the_broken_range_is_named_first(report):
    rows = {r["node"]: r for r in report}
    assert worst(report)[0]["node"] == "coarse"
    assert rows["coarse"]["sqnr_db"] < 5 and rows["coarse"]["growth_db"] > 25
    assert rows["input image"]["sqnr_db"] > 38 and rows["relu"]["sqnr_db"] > 30  # int8 steps of a +-1 range
    assert rows["last"]["growth_db"] < 3  # the loss is inherited, not made here


def test_build_reports_layers_and_inspect_lists_them(capsys, tmp_path, digits):
    out = tmp_path / "dist"
    eval_file = tmp_path / "eval.npz"
    np.savez(eval_file, image=np.load(digits["eval"])["image"][:SAMPLES])
    args = ["build", str(digits["model"]), "--target", "tflite", "--quant", "int8", "--calib", str(digits["calib"]),
            "--eval", str(eval_file), "--out", str(out)]
    with pytest.raises(SystemExit) as done:
        main(args)
    screen = capsys.readouterr().out
    assert done.value.code == 0 and "where the error grows most" in screen
    bundle = next(p for p in out.iterdir() if p.is_dir())
    manifest = json.loads((bundle / "manifest.json").read_text())
    layers, fidelity = manifest["fidelity"]["layers"], manifest["fidelity"]
    assert layers[0]["op"] == "INPUT" and {r["op"] for r in layers} >= {"CONV_2D", "FULLY_CONNECTED"}
    # the last layer is the output: its SQNR is the build's own (same 8 samples, float lowering ~ source)
    assert layers[-1]["sqnr_db"] == pytest.approx(fidelity["sqnr_db"], abs=0.5)
    with pytest.raises(SystemExit) as done:
        main(["inspect", str(bundle), "--layers", "--json"])
    assert done.value.code == 0 and json.loads(capsys.readouterr().out)["layers"] == layers


def test_inspect_layers_of_a_float_bundle_says_why_there_are_none(capsys, tmp_path, digits):
    out = tmp_path / "dist"
    with pytest.raises(SystemExit):
        main(["build", str(digits["model"]), "--target", "tflite", "--out", str(out), "--quiet"])
    capsys.readouterr()
    bundle = next(p for p in out.iterdir() if p.is_dir())
    with pytest.raises(SystemExit) as done:
        main(["inspect", str(bundle), "--layers"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "no per-layer errors in this bundle (tflite, float32)" in err
