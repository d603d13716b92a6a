"""GELU on the coral target: edgetpu_compiler 16 cannot parse TFLite's GELU builtin (code 150,
newer than the compiler), so the coral lowering spells GELU (an ONNX Gelu, or the erf form
exporters write) as x * sigmoid(c (a + b c^2)), c = x clipped to [-5, 5], in MINIMUM, MAXIMUM,
MUL, ADD and LOGISTIC, which map; the tflite target keeps the one GELU builtin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import TensorProto, helper

from edgeopt.build import BuildRequest, build
from edgeopt.edgetpu import analyse
from edgeopt.edgetpu.versions import FIRST_UNKNOWN_BUILTIN, builtin_code
from edgeopt.lower.ops.activations import gelu_for_edgetpu
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite
from lower.against_ort import GraphBuilder

QUIET = Progress(quiet=True)
GELU_OPS = {"MINIMUM": 1, "MAXIMUM": 1, "MUL": 4, "ADD": 1, "LOGISTIC": 1}  # clip; c*c, *b, +a, *c; x*
FLOAT_BOUND = 4.74e-4  # max |gelu_for_edgetpu(x) - gelu(x)|, see its docstring


def gelu(g: GraphBuilder, x: str, form: str) -> str:
    """GELU of x as one ONNX Gelu (opset 20) or in the erf form PyTorch exports below it."""
    if form == "Gelu":
        return g.node("Gelu", x)
    inner = g.node("Erf", g.node("Div", x, g.weight("sqrt2", np.array(np.sqrt(2), np.float32))))
    half = g.node("Mul", g.node("Add", inner, g.weight("one", np.array(1, np.float32))),
                  g.weight("half", np.array(0.5, np.float32)))
    return g.node("Mul", x, half)


def gelu_block(directory: Path, form: str) -> dict:
    """conv 3x3 -> GELU -> conv 1x1 on 8x8x8, saved with 32 calibration and 32 evaluation samples;
    the first conv spreads its output over [-4, 4], where GELU bends."""
    g = GraphBuilder()
    h = gelu(g, g.conv(g.input("x", (1, 8, 8, 8)), 8, 8, pads=[1, 1, 1, 1]), form)
    g.conv(h, 8, 4, kernel=1, name="y")
    model = g.model(["y"], opset=20 if form == "Gelu" else 18)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]))
    onnx.save(model, directory / "gelu_block.onnx")
    rng = np.random.default_rng(3)
    for name in ("calib", "eval"):
        np.savez(directory / f"{name}.npz", x=rng.uniform(-1, 1, (32, 8, 8, 8)).astype(np.float32))
    return {"model": directory / "gelu_block.onnx", "calib": directory / "calib.npz", "eval": directory / "eval.npz"}


def build_for(source: dict, target: str, out: Path):
    return build(BuildRequest(source["model"], target=target, quant="int8", calib=str(source["calib"]),
                              eval=str(source["eval"]), out=out), QUIET)


@pytest.fixture(scope="module", params=["Gelu", "erf form"])
def builds(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gelu")
    source = gelu_block(directory, request.param)
    return build_for(source, "coral", directory / "coral"), build_for(source, "tflite", directory / "tflite")


def test_coral_spells_gelu_in_mapped_ops_and_is_predicted_to_compile(builds):
    coral, _ = builds
    model = read_tflite(coral.artefact.files["model.tflite"])
    counts = model.op_counts()
    assert "GELU" not in counts and {op: counts[op] for op in GELU_OPS} == GELU_OPS
    assert max(builtin_code(op.opcode) for op in model.operators) < FIRST_UNKNOWN_BUILTIN
    predicted = coral.manifest["artefact"]["edgetpu"]["predicted"]
    assert predicted["cpu_ops"] == 0 and predicted["edgetpu_ops"] == len(model.operators)


def test_coral_keeps_the_int8_fidelity_of_the_gelu_builtin(builds):
    """The tflite target's int8 GELU is the reference: coral's ops lose at most 0.5 dB to it
    (34.6 against 34.8 dB; 30.6 dB without the clip)."""
    coral, tflite = builds
    assert coral.fidelity.sqnr_db >= 34
    assert coral.fidelity.sqnr_db >= tflite.fidelity.sqnr_db - 0.5


def test_the_tflite_target_keeps_the_gelu_builtin_which_coral_could_not_parse(builds):
    _, tflite = builds
    model = read_tflite(tflite.artefact.files["model.tflite"])
    assert model.op_counts()["GELU"] == 1 and "LOGISTIC" not in model.op_counts()
    assert analyse(model).errors == [
        "Op builtin_code out of range: 150. Are you using old TFLite binary with newer model?",
        "Model could not be parsed"]


def test_the_stated_float_bound_holds_far_beyond_the_clip():
    x = np.linspace(-1e4, 1e4, 200_001)
    x = np.concatenate([x, np.linspace(-8, 8, 160_001)])
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    error = np.abs(gelu_for_edgetpu(tf.constant(x)).numpy() - exact)
    assert 4.7e-4 < error.max() <= FLOAT_BOUND
