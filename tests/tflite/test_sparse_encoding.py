"""TFLite's sparse encoding is shipped for a pruned model only where the file gets smaller and
XNNPACK runs it to the dense model's outputs; otherwise the dense file ships and the manifest
says why. Real converter and LiteRT runs on a small conv net."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite


def _net(conv_zeros: float, fc_zeros: float) -> onnx.ModelProto:
    """conv1 3->32 (dense), relu, conv2 32->64 3x3 (`conv_zeros` of it zero), relu, pool, fc 64->10."""
    rng = np.random.default_rng(0)

    def weight(shape, zeros):
        w = rng.standard_normal(shape).astype(np.float32)
        w[rng.random(shape) < zeros] = 0
        return w

    arrays = {"w1": weight((32, 3, 3, 3), 0), "b1": np.zeros(32, np.float32), "w2": weight((64, 32, 3, 3), conv_zeros),
              "b2": np.zeros(64, np.float32), "w3": weight((10, 64), fc_zeros), "b3": np.zeros(10, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "pruned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _build(tmp_path, conv_zeros: float, fc_zeros: float = 0.0, **fields):
    onnx.save(_net(conv_zeros, fc_zeros), tmp_path / "net.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).standard_normal((32, 3, 16, 16)).astype(np.float32))
    return build(BuildRequest(tmp_path / "net.onnx", out=tmp_path / "dist", target="tflite", quant="int8",
                              calib=str(tmp_path / "calib.npz"), **fields), Progress(quiet=True))


def test_a_pruned_conv_ships_sparse_smaller_and_true_to_the_dense_model(tmp_path):
    sparse = _build(tmp_path, 0.9)
    record = sparse.manifest["artefact"]["sparse_encoding"]
    assert record["encoding"] == "sparse" and record["sparse_bytes"] < 0.6 * record["dense_bytes"]
    data = sparse.artefact.files["model.tflite"]
    assert len(data) == record["sparse_bytes"] and read_tflite(data).op_counts()["DENSIFY"] == 1
    dense = _build(tmp_path, 0.9, sparse_encoding=False)
    assert "sparse_encoding" not in dense.manifest["artefact"]
    assert len(dense.artefact.files["model.tflite"]) == record["dense_bytes"]
    x = {"x": np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    np.testing.assert_array_equal(sparse.artefact.run(x)[0], dense.artefact.run(x)[0])  # lossless: same int8 outputs
    assert sparse.fidelity.sqnr_db > 30


@pytest.mark.parametrize("conv_zeros, fc_zeros, reason", [
    (0.5, 0.0, r"not smaller \([\d,]+ bytes against [\d,]+ dense\)"),
    (0.9, 0.9, r"LiteRT's default CPU path \(XNNPACK\) does not run it: .*FULLY_CONNECTED"),
])
def test_a_sparse_file_that_is_larger_or_that_xnnpack_refuses_stays_dense(tmp_path, conv_zeros, fc_zeros, reason):
    record = _build(tmp_path, conv_zeros, fc_zeros).manifest["artefact"]["sparse_encoding"]
    assert record["encoding"] == "dense"
    assert re.match(reason, record["sparse_not_used"]), record


def test_an_unpruned_model_is_not_tried(tmp_path):
    assert "sparse_encoding" not in _build(tmp_path, 0.0).manifest["artefact"]
