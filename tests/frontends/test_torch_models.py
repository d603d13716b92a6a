"""Every PyTorch path, on real saved files: outputs of the IR (onnxruntime) vs torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_models import SHAPE, torch_out

from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.ir import input_specs, ort_session

TOL = dict(rtol=1e-4, atol=1e-5)  # export reorders float ops; nothing more


def run_ir(loaded, x):
    name = input_specs(loaded.model)[0].name
    return ort_session(loaded.model).run(None, {name: x})[0]


def test_exported_program(tmp_path, net, x):
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.from_numpy(x),)), path)
    loaded = load_model(path)
    assert loaded.format == "exported-program"
    assert input_specs(loaded.model)[0].shape == SHAPE
    np.testing.assert_allclose(run_ir(loaded, x), torch_out(net, x), **TOL)
    np.testing.assert_allclose(loaded.reference({"image": x})[0], torch_out(net, x), rtol=0, atol=0)


def test_exported_program_dynamic_batch_needs_shape(tmp_path, net, x):
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.from_numpy(np.repeat(x, 2, 0)),), dynamic_shapes=({0: batch},))
    path = tmp_path / "dyn.pt2"
    torch.export.save(program, path)
    with pytest.raises(UsageError) as info:
        load_model(path)
    assert "image [?,3,8,8] (dynamic dims 0)" in info.value.message
    assert "--input-shape image=1,3,8,8" in info.value.hint
    loaded = load_model(path, FrontendOptions(input_shapes={"image": (2, 3, 8, 8)}))
    assert input_specs(loaded.model)[0].shape == (2, 3, 8, 8)
    both = np.concatenate([x, -x])
    np.testing.assert_allclose(run_ir(loaded, both), torch_out(net, both), **TOL)


def test_torchscript_needs_shape_then_loads(tmp_path, net, x):
    path = tmp_path / "net.pt"
    torch.jit.trace(net, torch.from_numpy(x)).save(str(path))
    with pytest.raises(UsageError) as info:
        load_model(path)
    assert "shape not recorded" in info.value.message
    loaded = load_model(path, FrontendOptions(input_shapes={"": SHAPE}))
    assert loaded.format == "torchscript"
    np.testing.assert_allclose(run_ir(loaded, x), torch_out(net, x), **TOL)


def test_state_dict_with_module_factory(tmp_path, net, x):
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path)
    with pytest.raises(UsageError, match="is a state_dict"):
        load_model(path)
    loaded = load_model(path, FrontendOptions(input_shapes={"image": SHAPE}, module="torch_models:tiny_net"))
    assert loaded.format == "state-dict"
    np.testing.assert_allclose(run_ir(loaded, x), torch_out(net, x), **TOL)


def test_module_factory_errors(tmp_path, net):
    path = tmp_path / "weights.pth"
    torch.save({"other.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match="does not match torch_models:tiny_net"):
        load_model(path, FrontendOptions(input_shapes={"image": SHAPE}, module="torch_models:tiny_net"))
    with pytest.raises(UsageError, match="cannot import"):
        load_model(path, FrontendOptions(input_shapes={"image": SHAPE}, module="no_such_pkg:f"))


def test_pickled_module_refused_without_trust(tmp_path, net, x):
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert info.value.exit_code == 3
    assert "pickled whole module" in info.value.message and "--trust-pickle" in info.value.hint
    loaded = load_model(path, FrontendOptions(input_shapes={"image": SHAPE}, trust_pickle=True))
    np.testing.assert_allclose(run_ir(loaded, x), torch_out(net, x), **TOL)


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_corrupt_torch_file(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"\x00garbage, not a model" * 10)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(path) in info.value.message and info.value.exit_code == 3


def test_shifted_window_attention_exports_after_torchs_own_decompositions(tmp_path):
    """Swin (2 heads): the ONNX exporter's own decompositions stop at a `view` of the attention
    output ("Cannot view a tensor with shape ..."); decomposed by torch first, it exports and
    matches torch."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=32, patch_size=4, window_size=4, embed_dim=8, depths=[2],
                                     num_heads=[2], num_labels=3)
    swin = transformers.SwinForImageClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.swin = swin

        def forward(self, image):
            return self.swin(image).logits

    path = tmp_path / "swin.pt2"
    torch.export.save(torch.export.export(Logits(), (torch.zeros(1, 3, 32, 32),)), path)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = Logits()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_ir(load_model(path), x), expected, **TOL)


def test_exporter_failure_is_one_paragraph_with_its_reason(tmp_path):
    """A matrix inverse, which torch.export traces and the ONNX exporter has no function for
    (with or without torch's decompositions): exit 3 with the exporter's reason, without its
    ANSI colours or its "file an issue" advice."""

    class Inverse(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.inv(x @ x.transpose(-1, -2) + torch.eye(4))

    path = tmp_path / "inverse.pt2"
    torch.export.save(torch.export.export(Inverse(), (torch.zeros(1, 4, 4),)), path)
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = info.value.message
    assert info.value.exit_code == 3
    assert "torch.onnx.export failed: DispatchError: No ONNX function found for" in message
    assert "aten.linalg_inv_ex" in message
    assert "\x1b" not in message and "\n" not in message and "GitHub" not in message
