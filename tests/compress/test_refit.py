"""Refit after a compression pass (edgeopt/compress/_refit.py): the next layers absorb what a
pruned channel carried, through strided, padded convs and a Flatten into a Gemm; unstructured
pruning's zeros are chosen anew, as many per row; the last op of a rewrite's chain is fit to
the layer it replaced; and the refit model is closer to the one before on samples it never saw."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.data import Dataset
from edgeopt.compress._refit import _mirrored
from edgeopt.compress._walk import outputs_of
from edgeopt.ir import infer_shapes, to_bytes
import edgeopt.compress  # noqa: F401  (registers the passes)
from edgeopt.passes import make_pass
from lower.against_ort import SAME_PADS, GraphBuilder


def _net() -> tuple[GraphBuilder, ir.Model]:
    """conv a 3->8 (channel 5 = 0.1 x channel 2), relu, conv b 8->6 3x3 stride 2, relu,
    flatten, gemm 96->4."""
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
    x = g.node("Relu", g.conv(x, 8, 6, pads=SAME_PADS, strides=[2, 2], name="b"))
    out = g.gemm(g.node("Flatten", x, name="flat"), 6 * 16, 4, name="fc")
    for key in ("a_w", "a_b"):
        g.weights[key][5] = 0.1 * g.weights[key][2]
    return g, infer_shapes(ir.from_proto(g.model([out])))


def _samples(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, 8, 8)).astype(np.float32)


def _error(model: ir.Model, reference: bytes, x: np.ndarray, value: str = "fc") -> float:
    """Mean squared error of `value` (default: the output) against `reference`, relative to
    its mean square there."""
    got, want = (np.concatenate([run({"image": s[None]})[0] for s in x])
                 for run in (outputs_of(model, [value]), outputs_of(reference, [value])))
    return float(np.mean((got - want) ** 2) / np.mean(want ** 2))


def _compressed(name: str, options: dict, refit: bool) -> tuple[ir.Model, bytes]:
    _, model = _net()
    before = to_bytes(model)
    p = make_pass(name, {**options, "refit": refit})
    p.calibrate(Dataset({"image": _samples(64, 0)}, None, "uniform noise"), 1)
    p.apply(model)
    return infer_shapes(model), before


def test_the_next_layers_absorb_a_pruned_channel_that_repeats_another():
    """Channel 5 of `a` is 0.1 x channel 2 after the ReLU too: b can carry it exactly, and the
    refit finds that through b's padded stride-2 patches and the Gemm behind the Flatten."""
    plain, before = _compressed("prune-channels", {"ratio": 0.125}, refit=False)
    refit, _ = _compressed("prune-channels", {"ratio": 0.125}, refit=True)
    kept = [n.inputs[1].const_value.numpy().shape[0] for n in refit.graph if n.name == "a"]
    assert kept == [7]
    held_out = _samples(16, 1)
    assert _error(plain, before, held_out) > 1e-3
    assert _error(refit, before, held_out) < 1e-3 * _error(plain, before, held_out)


def test_refit_chooses_the_zeros_anew_and_the_outputs_come_closer():
    """Each row loses half its weights either way; refit picks which by what they cost."""
    plain, before = _compressed("prune", {"sparsity": 0.5, "exclude": ["fc"]}, refit=False)
    refit, _ = _compressed("prune", {"sparsity": 0.5, "exclude": ["fc"]}, refit=True)
    moved = 0
    for a, b in zip(plain.graph, refit.graph):
        if a.op_type == "Conv":
            zeros, refit_zeros = (n.inputs[1].const_value.numpy() == 0 for n in (a, b))
            assert 0.49 < zeros.mean() <= 0.5
            rows = refit_zeros.reshape(len(refit_zeros), -1)
            assert (np.abs(rows.sum(1) - rows.shape[1] / 2) <= 0.5).all()  # 27 weights a row: 13 or 14
            moved += int(np.sum(zeros & ~refit_zeros))
    assert moved > 0
    held_out = _samples(16, 1)  # independent noise: what a pruned weight read is mostly lost (0.20 against 0.29)
    assert _error(refit, before, held_out) < 0.8 * _error(plain, before, held_out)


@pytest.mark.parametrize("name, options", [("depthwise", {}), ("lowrank", {"rank": 2})])
def test_a_rewrites_last_op_is_refit_to_the_layer_it_replaced(name, options):
    """b becomes a chain whose last op gives b's output; refit fits it there (independent
    noise: 0.58 -> 0.45 relative error for depthwise, 0.80 -> 0.60 for rank 2)."""
    plain, before = _compressed(name, options, refit=False)
    refit, _ = _compressed(name, options, refit=True)
    assert "b.1" in [n.name for n in refit.graph]
    held_out = _samples(16, 1)
    assert _error(refit, before, held_out, "b") < 0.85 * _error(plain, before, held_out, "b")


def test_refit_doubles_its_images_with_mirror_images():
    image = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)
    flipped = _mirrored({"image": image, "scale": np.ones((2, 1), np.float32)})
    np.testing.assert_array_equal(flipped["image"], image[..., ::-1])
    np.testing.assert_array_equal(flipped["scale"], 1)
    nhwc = image.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(_mirrored({"image": nhwc})["image"], nhwc[:, :, ::-1])
    assert _mirrored({"tokens": np.ones((1, 3, 8, 8), np.int64)}) is None
    assert _mirrored({"features": np.ones((1, 16), np.float32)}) is None


def test_refit_says_how_many_samples_it_read():
    _, model = _net()
    p = make_pass("prune", {"sparsity": 0.5})
    p.calibrate(Dataset({"image": _samples(8, 0)}, None, "uniform noise"), 1)
    assert "on 16 samples (half of them mirror images)" in "\n".join(p.apply(model))
    _, model = _net()
    p = make_pass("prune", {"sparsity": 0.5, "mirror": False})
    p.calibrate(Dataset({"image": _samples(8, 0)}, None, "uniform noise"), 1)
    assert "refit to their outputs before, on 8 samples\n" in "\n".join(p.apply(model)) + "\n"
