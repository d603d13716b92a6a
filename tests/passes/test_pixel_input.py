"""pixel-input: the model takes pixels 0..255 and normalises them itself, exactly: folded into
the first conv (its zero padding becomes a Pad with the mean pixel) when every channel has the
same mean pixel, else kept as one per-channel affine."""

import numpy as np
import pytest
from onnx import helper

from edgeopt.errors import UsageError
from edgeopt.ir import infer_shapes, ort_session, to_bytes
from edgeopt.passes import make_pass


def _conv_net(build_model, rng, pads):
    constants = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="stem", pads=pads, strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"])]
    side = (8 + pads[0] + pads[2] - 3) // 2 + 1
    return infer_shapes(build_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4, side, side])], constants))


LITE = ([127 / 255] * 3, [128 / 255] * 3)  # (x - 127) / 128
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.mark.parametrize("convention, pads, said, ops", [
    (LITE, [0, 0, 1, 1], "its zero padding is the mean pixel 127", 3),
    (LITE, [0, 0, 0, 0], "folded into Conv 'stem'", 2),
    (IMAGENET, [0, 0, 1, 1], "kept as a per-channel affine", 3),
    (IMAGENET, [0, 0, 0, 0], "folded into Conv 'stem'", 2),
], ids=["lite-padded", "lite-valid", "imagenet-padded", "imagenet-valid"])
def test_pixels_in_give_the_normalised_model_s_outputs(build_model, rng, convention, pads, said, ops):
    mean, std = convention
    model = _conv_net(build_model, rng, pads)
    pixels = rng.integers(0, 256, (1, 3, 8, 8)).astype(np.float32)
    normalised = (pixels / 255 - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    expected = ort_session(to_bytes(model)).run(None, {"x": normalised.astype(np.float32)})[0]

    changes = make_pass("pixel-input", {"scale": 1 / 255, "mean": mean, "std": std}).apply(model)

    got = ort_session(to_bytes(infer_shapes(model))).run(None, {"x": pixels})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)  # exact up to float rounding
    assert len(changes) == 1 and said in changes[0]
    assert len(model.graph) == ops  # at most one op added at the input


def test_a_model_without_one_image_input_is_refused(build_model):
    model = build_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])])
    with pytest.raises(UsageError, match="one 4-D float image input"):
        make_pass("pixel-input").apply(model)
