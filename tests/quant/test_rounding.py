"""Learned rounding (AdaRound): with no steps it is nearest rounding; learned, every weight
stays on the int8 grid of its channel's unchanged scale, the layers' output error drops on
data it never saw, and the converter keeps the learned int8 weights bit for bit."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.cli import main
from edgeopt.lower import lower
from edgeopt.quant.ranges import activation_ranges
from edgeopt.quant.rounding import rounding_fix
from edgeopt.quant.sequential import INT8_MAX, channel_scales, round_per_channel, walk
from edgeopt.tflite.convert import convert, representative_data
from lower.against_ort import SAME_PADS, GraphBuilder


def two_convs():
    g = GraphBuilder(seed=2)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"), name="relu")
    return g.model([g.conv(x, 8, 6, pads=SAME_PADS, name="second")])


def feeds(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"image": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(count)]


def kernels(lowered) -> dict[str, tuple]:
    return {s.node: (s.params["kernel"], s.params["channels"]) for s in lowered.steps if "kernel" in s.params}


def output_error(lowered, reference, data) -> float:
    """Relative MSE of the graph output against `reference` (the float lowering's)."""
    got = np.concatenate([np.asarray(lowered({"image": np.transpose(f["image"], (0, 2, 3, 1))})[0]) for f in data])
    return float(np.mean((got - reference) ** 2) / np.mean(reference ** 2))


@pytest.fixture(scope="module")
def learned():
    lowered = lower(ir.from_proto(two_convs()))
    calibration, held_out = feeds(32, 0), feeds(16, 1)
    originals = {node: k.numpy() for node, (k, _) in kernels(lowered).items()}
    reference = np.concatenate([np.asarray(lowered({"image": np.transpose(f["image"], (0, 2, 3, 1))})[0])
                                for f in held_out])
    nearest = lower(ir.from_proto(two_convs()))
    for kernel, channels in kernels(nearest).values():
        kernel.assign(round_per_channel(kernel.numpy(), channels))
    results = []
    walk(lowered, calibration, {}, rounding_fix(results, steps=100))
    return {"lowered": lowered, "originals": originals, "results": results, "calibration": calibration,
            "error": output_error(lowered, reference, held_out), "nearest_error": output_error(nearest, reference,
                                                                                                 held_out)}


def test_zero_steps_is_nearest_rounding():
    lowered = lower(ir.from_proto(two_convs()))
    expected = {node: round_per_channel(k.numpy(), c) for node, (k, c) in kernels(lowered).items()}
    walk(lowered, feeds(8, 0), {}, rounding_fix([], steps=0))
    for node, (kernel, _) in kernels(lowered).items():
        np.testing.assert_allclose(kernel.numpy(), expected[node], rtol=0, atol=1e-7)


def test_learned_weights_sit_on_the_grid_of_the_unchanged_channel_scale(learned):
    for node, (kernel, channels) in kernels(learned["lowered"]).items():
        original, now = learned["originals"][node], kernel.numpy()
        scale = channel_scales(original, channels)
        np.testing.assert_allclose(channel_scales(now, channels), scale, rtol=1e-6)
        steps = now.reshape(-1, channels) / scale
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
        assert np.abs(np.round(steps)).max() == INT8_MAX
        assert np.abs(steps - original.reshape(-1, channels) / scale).max() < 1 + 1e-4  # up or down, one step at most


def test_learned_rounding_lowers_the_error_on_held_out_data(learned):
    assert [r.node for r in learned["results"]] == ["first", "second"]
    assert all(r.error_learned <= r.error_nearest for r in learned["results"])  # nearest kept where it is better
    second = learned["results"][1]
    assert second.changed > 0 and second.error_learned < 0.9 * second.error_nearest  # measured: 0.84x
    assert learned["error"] < 0.95 * learned["nearest_error"]  # measured: 0.90x (float activations, 16 samples)


def test_the_converter_keeps_the_learned_int8_weights_bit_for_bit(learned):
    from ai_edge_litert.interpreter import Interpreter

    lowered = learned["lowered"]
    lowered.set_ranges(activation_ranges(lowered, learned["calibration"], "minmax"))
    data = convert(lowered, "int8", representative=representative_data(lowered, learned["calibration"]))
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    int8_weights = sorted((d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8
                           and len(d["shape"]) == 4 and d["quantization_parameters"]["scales"].size > 1),
                          key=lambda d: d["shape"][0], reverse=True)  # OHWI: 8 then 6 output channels
    for detail, (kernel, channels) in zip(int8_weights, kernels(lowered).values()):
        expected = np.round(kernel.numpy() / channel_scales(kernel.numpy(), channels)).astype(np.int8)
        np.testing.assert_array_equal(interpreter.get_tensor(detail["index"]), expected.transpose(3, 0, 1, 2))


def test_centred_rounding_of_a_conv_on_pixels_leaves_its_mean_error_to_the_bias():
    """Inputs 0..255 (a conv reading raw pixels): the rounding error's mean per channel is most
    of it; centred, the rounding fits the rest and the bias takes the mean."""
    def pixels(count, seed):
        rng = np.random.default_rng(seed)
        return [{"image": rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)} for _ in range(count)]

    calibration, held_out = pixels(32, 0), pixels(16, 1)
    reference = lower(ir.from_proto(two_convs()))
    expected = np.concatenate([np.asarray(reference({"image": np.transpose(f["image"], (0, 2, 3, 1))})[0])
                               for f in held_out])
    errors = {}
    for centred in ((), ("first",)):
        lowered = lower(ir.from_proto(two_convs()))
        first = next(s for s in lowered.steps if s.node == "first")
        bias_before = first.params["bias"].numpy().copy()
        walk(lowered, calibration, {}, rounding_fix([], steps=100, centred=centred))
        assert np.array_equal(first.params["bias"].numpy(), bias_before) != bool(centred)
        errors[bool(centred)] = output_error(lowered, expected, held_out)
    assert errors[True] < 0.8 * errors[False]  # measured: 1.5e-5 against 2.1e-5


@pytest.mark.parametrize("flags, fragment", [(["--target", "onnx"], "does not support --rounding learned"),
                                             (["--target", "tflite", "--rounding-steps", "-1"], "--rounding-steps -1")])
def test_bad_rounding_flags_are_exit_2(capsys, tmp_path, digits, flags, fragment):
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--quant", "int8", "--calib", str(digits["calib"]), "--rounding",
              "learned", "--out", str(tmp_path), *flags])
    assert done.value.code == 2 and fragment in capsys.readouterr().err
