"""Runtime acceptance: every tflite artefact is loaded and run by LiteRT with its default
XNNPACK delegate, as a device does, before it is verified.

The ResNet stem (Conv, ReLU, MaxPool 3x3 stride 2 pad 1) once lowered its pad as float32's
lowest value: int8 calibration gave the stem a +-3.4e38 range (scale 1.3e36), and XNNPACK
refused the next convolution. Now the pad is 0 after a ReLU, else the repeated edge values. A model XNNPACK truly refuses (a 1x1 convolution whose two
weights nearly cancel: its requantization scale is ~800, XNNPACK's limit 256) must stop the
build with exit 7 naming the op and node, no traceback.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeopt.backends.tflite import device_module
from edgeopt.build import BuildRequest, build
from edgeopt.cli import main
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite

SHAPE = (1, 3, 32, 32)
SQNR_DB = 30  # int8 against float on 32 held-out samples; measured 42.5 dB (ReLU first), top-1 agreement 1.0


class ResNetStem(nn.Module):
    """ResNet-18 in small: its stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool with pad 1, which
    TF's SAME padding cannot express) and one basic block with its residual ADD."""

    def __init__(self, relu_first: bool = True):
        super().__init__()
        pool, relu = nn.MaxPool2d(3, 2, 1), nn.ReLU()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8),
                                  *((relu, pool) if relu_first else (pool, relu)))
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, image):
        x = self.stem(image)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean((2, 3)))


def samples(path, count: int, seed: int):
    np.savez(path, image=np.random.default_rng(seed).standard_normal((count, *SHAPE[1:])).astype(np.float32))
    return str(path)


@pytest.fixture(scope="module", params=["relu-then-pool", "pool-then-relu"])
def stem_int8(request, tmp_path_factory):
    """Pool after ReLU pads with 0; pool before it (no known lower bound) repeats the edges."""
    root = tmp_path_factory.mktemp("stem")
    torch.manual_seed(0)
    net = ResNetStem(relu_first=request.param == "relu-then-pool").eval()
    torch.export.save(torch.export.export(net, (torch.randn(SHAPE),)), root / "stem.pt2")
    build_request = BuildRequest(model=root / "stem.pt2", target="tflite", quant="int8", out=root / "dist",
                                 calib=samples(root / "calib.npz", 32, 0), eval=samples(root / "eval.npz", 32, 1))
    return request.param, build(build_request, Progress(quiet=True))


def test_resnet_stem_int8_runs_under_xnnpack_within_tolerance_of_float(stem_int8):
    _, result = stem_int8
    data = result.artefact.files["model.tflite"]
    interpreter = device_module("tflite", "litert_model").open_model(data)
    model = read_tflite(data)
    # XNNPACK takes the whole graph: one delegate node after the model's own ops
    assert len(interpreter._get_ops_details()) == len(model.operators) + 1
    assert result.fidelity.sqnr_db > SQNR_DB and result.fidelity.top1_agreement >= 0.9


def test_resnet_stem_max_pool_pad_keeps_the_int8_range(stem_int8):
    """A plain PAD (0) after ReLU, else edge rows and columns concatenated; every scale sane."""
    order, result = stem_int8
    model = read_tflite(result.artefact.files["model.tflite"])
    pool = next(op for op in model.operators if op.opcode == "MAX_POOL_2D")
    assert model.producer(pool.inputs[0]).opcode == ("PAD" if order == "relu-then-pool" else "CONCATENATION")
    assert max(s for t in model.tensors if not t.constant for s in t.scale) < 1.0


def cancelling_conv(path) -> str:
    """x -> Concat(x, x) -> 1x1 Conv with weights 1000 and -999.99: the output is 0.01 x, its
    range 1e5 times narrower than the weights'; the converter accepts it, XNNPACK does not."""
    weight = numpy_helper.from_array(np.array([1000.0, -999.99], np.float32).reshape(1, 2, 1, 1), "w")
    nodes = [helper.make_node("Concat", ["x", "x"], ["twice"], axis=1, name="twice"),
             helper.make_node("Conv", ["twice", "w"], ["y"], name="cancel")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return str(path)


def test_xnnpack_refusal_is_exit_7_naming_the_op_and_node(tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).standard_normal((16, 1, 4, 4)).astype(np.float32))
    out = tmp_path / "dist"
    with pytest.raises(SystemExit) as info:
        main(["build", "--target", "tflite", "--quant", "int8", "--calib", str(tmp_path / "calib.npz"),
              "--out", str(out), cancelling_conv(tmp_path / "cancel.onnx")])
    err = capsys.readouterr().err
    assert info.value.code == 7, err
    message = err[err.index("error ("):]
    assert "refuses op #1 CONV_2D (node 'cancel')" in message and "failed to prepare" in message
    assert "fix:" in message and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
