from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch_models import SHAPE, torch_out

from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.ir import input_specs, ort_session


def export(net, x, path, dynamic=False):
    torch.onnx.export(net, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}} if dynamic else None)


def test_onnx_file(tmp_path, net, x):
    export(net, x, tmp_path / "net.onnx")
    loaded = load_model(tmp_path / "net.onnx")
    assert loaded.format == "onnx"
    out = ort_session(loaded.model).run(None, {"image": x})[0]
    np.testing.assert_allclose(out, torch_out(net, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(loaded.reference({"image": x})[0], out)


def test_dynamic_batch(tmp_path, net, x):
    export(net, x, tmp_path / "dyn.onnx", dynamic=True)
    with pytest.raises(UsageError) as info:
        load_model(tmp_path / "dyn.onnx")
    assert info.value.exit_code == 2 and "image [batch,3,8,8]" in info.value.message
    loaded = load_model(tmp_path / "dyn.onnx", FrontendOptions(input_shapes={"": SHAPE}))
    assert input_specs(loaded.model)[0].shape == SHAPE


def test_input_shape_errors(tmp_path, net, x):
    export(net, x, tmp_path / "net.onnx")
    with pytest.raises(UsageError, match="has inputs image"):
        load_model(tmp_path / "net.onnx", FrontendOptions(input_shapes={"nope": SHAPE}))
    with pytest.raises(UsageError, match="fixes it to 3"):
        load_model(tmp_path / "net.onnx", FrontendOptions(input_shapes={"image": (1, 4, 8, 8)}))


def test_corrupt_onnx(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert "bad.onnx" in info.value.message and info.value.exit_code == 3


def test_invalid_graph(tmp_path):
    node = onnx.helper.make_node("Relu", ["missing"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "invalid.onnx")
    with pytest.raises(ModelError, match="invalid"):
        load_model(tmp_path / "invalid.onnx")


@pytest.mark.parametrize("name", ["model.xyz", "model"])
def test_unknown_format(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ModelError) as info:
        load_model(tmp_path / name)
    assert "unknown model format" in info.value.message and ".pt2" in info.value.message


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "nope.onnx")
