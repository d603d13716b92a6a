"""--pixel-input on the digits CNN: the .tflite takes pixels 0..255, the normalisation folded
into its first conv; exact in float, and in int8 the input is the pixel grid itself (scale 1)
and the model as faithful as the one fed normalised values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.build import BuildRequest, build
from edgeopt.cli import main
from edgeopt.progress import Progress

MEAN_PIXEL = 127  # mean 127/255 on 0..1: every channel pads with pixel 127, exactly
PREPROCESS = {"scale": "0.00392156862745098", "mean": str(MEAN_PIXEL / 255), "std": "0.5"}


@pytest.fixture(scope="module")
def data(digits, tmp_path_factory):
    """The digits sets as pixels, and normalised as the pixel model's source model takes them."""
    out = tmp_path_factory.mktemp("pixels")
    paths = {}
    for name in ("calib", "eval"):
        stored = np.load(digits[name])
        pixels = np.round(stored["image"] * 255).astype(np.uint8)
        normalised = ((pixels / 255 - MEAN_PIXEL / 255) / 0.5).astype(np.float32)
        np.savez(out / f"{name}_pixels.npz", image=pixels, y=stored["y"])
        np.savez(out / f"{name}_normalised.npz", image=normalised, y=stored["y"])
        paths[name] = (out / f"{name}_pixels.npz", out / f"{name}_normalised.npz")
    return paths


def _build(digits, data, out: Path, quant: str, pixels: bool, **fields):
    which = 0 if pixels else 1
    return build(BuildRequest(digits["model"], target="tflite", quant=quant, calib=str(data["calib"][which]),
                              eval=str(data["eval"][which]), out=out, pixel_input=pixels,
                              preprocess=PREPROCESS if pixels else {}, **fields), Progress(quiet=True))


def test_float_pixels_in_are_exact(digits, data, tmp_path):
    result = _build(digits, data, tmp_path, "float32", pixels=True)
    assert result.fidelity.sqnr_db > 100 and result.fidelity.top1_agreement == 1.0
    assert result.manifest["preprocessing"]["pixel_input"] is True
    folded = [p for p in result.manifest["passes"] if p["name"] == "pixel-input"][0]["changes"]
    assert len(folded) == 1 and "folded into Conv" in folded[0]


def test_int8_pixels_in_are_the_input_grid_and_as_faithful_as_normalised_inputs(digits, data, tmp_path):
    pixels = _build(digits, data, tmp_path / "pixels", "int8", pixels=True)
    normalised = _build(digits, data, tmp_path / "normalised", "int8", pixels=False)
    assert pixels.manifest["inputs"][0]["quantization"] == {"scale": 1.0, "zero_point": -128}
    assert pixels.manifest["artefact"]["pixel_input"]["centred_convs"]  # its rounding centred on the mean pixel
    assert pixels.fidelity.sqnr_db > normalised.fidelity.sqnr_db - 1.0
    assert pixels.fidelity.artefact_accuracy >= normalised.fidelity.artefact_accuracy - 0.01


def test_learned_rounding_centres_the_first_conv_itself(digits, data, tmp_path):
    """The first conv's rounding fits its error less the mean, which its bias takes."""
    pixels = _build(digits, data, tmp_path / "pixels", "int8", pixels=True, rounding="learned", rounding_steps=40)
    normalised = _build(digits, data, tmp_path / "normalised", "int8", pixels=False, rounding="learned",
                        rounding_steps=40)
    assert pixels.manifest["artefact"]["pixel_input"]["centred_convs"]
    assert pixels.fidelity.sqnr_db > normalised.fidelity.sqnr_db - 1.0


@pytest.mark.parametrize("preprocess, code, fragment", [
    ([], 2, "--pixel-input needs the normalisation to fold in"),
    (["--preprocess", "std=0.5"], 9, "not pixels 0..255"),
], ids=["no-preprocess", "normalised-data"])
def test_bad_pixel_input_is_a_clear_error(capsys, tmp_path, digits, data, preprocess, code, fragment):
    """Without --preprocess there is nothing to fold; normalised data (negative values) is not pixels."""
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--target", "tflite", "--calib", str(data["calib"][1]), "--pixel-input",
              "--out", str(tmp_path), *preprocess])
    assert done.value.code == code and fragment in " ".join(capsys.readouterr().err.split())
    assert not any(tmp_path.iterdir())
