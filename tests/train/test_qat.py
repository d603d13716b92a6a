"""--qat: the trained int8 weights and activation ranges reach the .tflite exactly, training
lowers the int8 error on held-out data, and bad training flags are clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgeopt.cli import main
from edgeopt.data import Dataset
from edgeopt.lower import lower
from edgeopt.quant.ranges import activation_ranges
from edgeopt.quant.sequential import channel_scales
from edgeopt.tflite.convert import convert, representative_data
from edgeopt.train import TrainConfig
from edgeopt.train.qat import Int8Weights
from edgeopt.train.trainer import _step_units, onnx_teacher, train
from lower.against_ort import SAME_PADS, GraphBuilder


def two_convs():
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"), name="relu")
    return ir.from_proto(g.model([g.conv(x, 8, 6, pads=SAME_PADS, name="second")]))


def coarse_grid_convs():
    """Two convs whose int8 weight grid is coarse: one large weight per output channel sets
    each channel's scale, so PTQ rounds the others badly (the error is the weights')."""
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 16, pads=SAME_PADS, name="first"), name="relu")
    model = g.model([g.conv(x, 16, 8, pads=SAME_PADS, name="second")])
    for tensor in model.graph.initializer:
        if tensor.name.endswith("_w"):
            weight = onnx.numpy_helper.to_array(tensor).copy()
            weight.reshape(weight.shape[0], -1)[:, 0] = 12.0
            tensor.CopyFrom(onnx.numpy_helper.from_array(weight, tensor.name))
    return ir.from_proto(model)


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, 8, 8)).astype(np.float32)


def quantised(model, calibration: np.ndarray):
    """The lowering with min/max activation ranges, as the int8 build sets it before training."""
    lowered = lower(model)
    feeds = [{"image": x[None]} for x in calibration]
    lowered.set_ranges(activation_ranges(lowered, feeds, "minmax"))
    return lowered, feeds


def int8_error(lowered, held_out: np.ndarray, reference: np.ndarray) -> float:
    got = np.concatenate([np.asarray(lowered({"image": np.transpose(x[None], (0, 2, 3, 1))})[0]) for x in held_out])
    return float(np.mean((got - reference) ** 2) / np.mean(reference ** 2))


@pytest.fixture(scope="module")
def trained():
    model, calibration, held_out = coarse_grid_convs(), images(64, 0), images(32, 1)
    teacher = onnx_teacher(model)
    reference = np.transpose(teacher({"image": held_out})[0], (0, 2, 3, 1))
    lowered, feeds = quantised(model, calibration)
    before = {key: (float(lo.numpy()), float(hi.numpy())) for key, (lo, hi) in lowered.ranges.items()}
    Int8Weights(lowered)  # the PTQ model: kernels rounded to nearest
    ptq = int8_error(lowered, held_out, reference)
    config = TrainConfig(steps=100, batch=8, qat=True, augment=False, learning_rate=1e-2, range_learning_rate=1e-2)
    report = train(lowered, teacher, Dataset({"image": calibration}, None, "test"), config)
    return {"lowered": lowered, "feeds": feeds, "report": report, "ranges_before": before, "ptq": ptq,
            "qat": int8_error(lowered, held_out, reference)}


def test_training_lowers_the_int8_error_on_held_out_data(trained):
    report = trained["report"]
    assert report.steps == 100 and report.qat and report.loss_last < 0.6 * report.loss_first
    # QAT closes more than half of PTQ's gap to float; measured: 1.02e-3 -> 3.5e-4
    assert trained["qat"] < 0.5 * trained["ptq"]
    ranges, before = trained["lowered"].ranges, trained["ranges_before"]
    moved = {k for k, (lo, hi) in before.items() if abs(lo - ranges[k][0].numpy()) + abs(hi - ranges[k][1].numpy()) > 1e-3}
    image = trained["lowered"].inputs[0].key
    assert moved and image not in moved and image in before  # ranges were learned, the input's grid kept


def test_the_converter_keeps_the_trained_int8_weights_and_ranges_exactly(trained):
    from ai_edge_litert.interpreter import Interpreter

    lowered = trained["lowered"]
    data = convert(lowered, "int8", representative=representative_data(lowered, trained["feeds"]))
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    details = interpreter.get_tensor_details()
    kernels = [(s.params["kernel"].numpy(), s.params["channels"]) for s in lowered.steps if "kernel" in s.params]
    int8_weights = sorted((d for d in details if d["dtype"] == np.int8 and len(d["shape"]) == 4
                           and d["quantization_parameters"]["scales"].size > 1),
                          key=lambda d: d["shape"][0], reverse=True)
    assert len(int8_weights) == len(kernels) == 2  # OHWI: 16 then 8 output channels
    for detail, (kernel, channels) in zip(int8_weights, kernels):
        steps = kernel.reshape(-1, channels) / channel_scales(kernel, channels)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)  # the trainer left it on its grid
        expected = np.round(kernel / channel_scales(kernel, channels)).astype(np.int8)
        np.testing.assert_array_equal(interpreter.get_tensor(detail["index"]), expected.transpose(3, 0, 1, 2))
    activation_scales = sorted(float(d["quantization_parameters"]["scales"][0]) for d in details
                               if d["dtype"] == np.int8 and d["quantization_parameters"]["scales"].size == 1)
    for lo, hi in (tuple(float(b.numpy()) for b in bounds) for bounds in lowered.ranges.values()):
        learned = (hi - min(lo, 0.0)) / 255
        assert min(abs(s - learned) / learned for s in activation_scales) < 1e-5


def test_the_same_seed_trains_the_same_weights():
    def run():
        model = two_convs()
        lowered, _ = quantised(model, images(32, 0))
        train(lowered, onnx_teacher(model), Dataset({"image": images(32, 0)}, None, "test"),
              TrainConfig(steps=3, batch=8, qat=True, learning_rate=1e-3))
        return [s.params["kernel"].numpy() for s in lowered.steps if "kernel" in s.params]

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_held_steps_keep_their_weights():
    """--pixel-input's centred first conv: its bias holds its nearest rounding error times the
    mean pixel, so QAT leaves its kernel and bias as they are and trains the rest."""
    model = two_convs()
    lowered, _ = quantised(model, images(32, 0))
    Int8Weights(lowered)
    before = {s.node: [v.numpy().copy() for v in (s.params["kernel"], s.params["bias"])] for s in lowered.steps
              if "kernel" in s.params}
    train(lowered, onnx_teacher(model), Dataset({"image": images(32, 0)}, None, "test"),
          TrainConfig(steps=3, batch=8, qat=True, learning_rate=1e-2), held={"first"})
    after = {s.node: [s.params["kernel"].numpy(), s.params["bias"].numpy()] for s in lowered.steps if "kernel" in s.params}
    for a, b in zip(before["first"], after["first"]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before["second"][1], after["second"][1])


@pytest.mark.parametrize("flags, code, fragment", [
    (["--target", "onnx", "--qat"], 2, "does not support --qat"),
    (["--target", "tflite", "--qat", "--train-steps", "0"], 2, "--train-steps 0: give a number above 0"),
    (["--target", "tflite", "--train-time", "60"], 2, "--train-* and --no-augment are for --qat"),
    (["--target", "tflite", "--quant", "float32", "--qat"], 2, "does not support --qat"),
])
def test_bad_training_flags_are_clear_errors(capsys, tmp_path, digits, flags, code, fragment):
    quant = [] if "--quant" in flags else ["--quant", "int8"]
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--calib", str(digits["calib"]), "--out", str(tmp_path), *quant, *flags])
    assert done.value.code == code and fragment in " ".join(capsys.readouterr().err.split())
    assert not any(tmp_path.iterdir())  # no partial output


def test_a_qat_build_reports_its_training(capsys, tmp_path, digits):
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--target", "tflite", "--quant", "int8", "--calib", str(digits["calib"]),
              "--qat", "--train-steps", "5", "--train-batch", "8", "--out", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert "quantisation-aware training: 5 steps of 8 samples from" in out and "distillation loss" in out
    assert "int8 as calibrated" in out and "after training" in out  # the fidelity table, side by side
    manifest = json.loads(next(tmp_path.glob("*/manifest.json")).read_text())
    before = manifest["fidelity"]["before_training"]
    assert before["samples"] == manifest["fidelity"]["samples"] and 0 < before["top1_agreement"] <= 1
    training = manifest["artefact"]["training"]
    assert training["steps"] == 5 and "seconds" not in training
    assert training["written_back"] >= 4 and training["not_written_back"] == []  # the IR holds the trained weights


def test_the_model_as_calibrated_is_read_with_its_own_output_scale():
    """QAT learns the output range too: the calibrated model's int8 outputs dequantize with its
    own scale, not the trained model's (a shared scale once made 'int8 as calibrated' look
    3 dB worse the longer training ran)."""
    from edgeopt.backends.tflite import tflite_artefact

    lowered, feeds = quantised(two_convs(), images(16, 0))
    representative = representative_data(lowered, feeds)
    calibrated = convert(lowered, "int8", representative=representative, io_dtype="int8")
    lo, hi = lowered.ranges[lowered.outputs[0].key]
    lo.assign(lo * 3)
    hi.assign(hi * 3)  # as if training had widened the output range
    trained = convert(lowered, "int8", representative=representative, io_dtype="int8")
    artefact = tflite_artefact(trained, lowered, {}, "int8", before_training=calibrated)
    alone = tflite_artefact(calibrated, lowered, {}, "int8")
    assert artefact.outputs[0]["quantization"]["scale"] > 2.5 * alone.outputs[0]["quantization"]["scale"]
    feed = {"image": images(1, 2)}
    np.testing.assert_array_equal(artefact.before_training(feed)[0], alone.run(feed)[0])


def test_a_kernel_steps_by_its_own_channels_magnitude():
    """Adam moves every weight by about the same amount per step: a channel 100x smaller than
    its kernel's others steps 100x finer, on the scale of its own int8 grid."""
    lowered = lower(two_convs())
    step = next(s for s in lowered.steps if s.node == "first")
    kernel, channels = step.params["kernel"], step.params["channels"]
    weights = kernel.numpy()
    weights[..., 1:] *= 100
    kernel.assign(weights)
    units = _step_units(lowered, [kernel, step.params["bias"]])
    per_channel = units[0].reshape(-1, channels)
    np.testing.assert_allclose(per_channel[0], np.abs(weights).reshape(-1, channels).mean(axis=0), rtol=1e-6)
    assert (per_channel == per_channel[0]).all() and per_channel[0, 1] > 50 * per_channel[0, 0]
    assert units[1] == pytest.approx(float(np.mean(np.abs(step.params["bias"].numpy()))))
