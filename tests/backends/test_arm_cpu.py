"""arm-cpu: the digits CNN compiled by TVM for a Raspberry Pi 4, checked on this host and run
by the C++ runner under qemu-aarch64; errors before any bundle is written."""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeopt.build import BuildRequest, build
from edgeopt.cli import main
from edgeopt.progress import Progress
from edgeopt.smoke import smoke

RUNTIME_LIMIT = 10 * 1024 * 1024  # issue 14: runtime + runner add at most 10 MB to the bundle


@pytest.fixture(scope="module")
def arm_bundle(digits, tmp_path_factory):
    return build(BuildRequest(digits["model"], target="arm-cpu", profile="rpi4", eval=str(digits["eval"]),
                              out=tmp_path_factory.mktemp("arm")), Progress(quiet=True))


def test_the_host_build_matches_the_source_model(arm_bundle):
    assert arm_bundle.fidelity.top1_agreement == 1.0 and arm_bundle.fidelity.sqnr_db > 80
    artefact = arm_bundle.manifest["artefact"]
    assert artefact["file"] == "model.so" and artefact["tvm_target"] == "raspberry-pi/4b-aarch64"
    assert arm_bundle.manifest["runner"] == "runner"


def test_the_bundle_carries_runtime_and_runner_within_10_mb(arm_bundle):
    directory = arm_bundle.bundle.directory
    extra = sum((directory / name).stat().st_size for name in ("runner", "libtvm_runtime.so", "libtvm_ffi.so"))
    assert extra == arm_bundle.manifest["artefact"]["runtime_bytes"] <= RUNTIME_LIMIT
    assert (directory / "runner").stat().st_mode & 0o111  # a program
    assert (directory / "runner").read_bytes()[:4] == b"\x7fELF" and not (directory / "edgeopt_runner.py").exists()
    ram = next(r for r in arm_bundle.size_check.rows if r.check == "ram")
    assert "(in the bundle, measured)" in ram.detail


@pytest.mark.parametrize("source", ["directory", "tarball"])
def test_the_aarch64_runner_matches_the_golden_outputs_under_qemu(arm_bundle, source):
    path = arm_bundle.bundle.directory if source == "directory" else arm_bundle.bundle.tarball
    report = smoke(path, board="qemu-aarch64", runs=3)
    assert report["ok"] and report["machine"] == "aarch64" and report["runtime"] == "tvm"
    golden = np.load(arm_bundle.bundle.directory / "golden" / "output_0.npy")
    assert report["outputs"][0]["max_abs_error"] <= 1e-4 * (golden.max() - golden.min())
    assert report["latency_ms"]["p50"] > 0 and report["peak_rss_mib"] > 0


def test_the_aarch64_outputs_match_the_float_source_model(arm_bundle, digits, tmp_path):
    """The runner's --save-outputs: what the board computed, against PyTorch on the same inputs."""
    import torch

    from edgeopt.boards.qemu import QemuBoard

    directory = arm_bundle.bundle.directory
    done = QemuBoard().run(directory, "runner", ["--json", "--runs", "1", "--save-outputs", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    board = np.load(tmp_path / "output_0.npy")
    images = np.load(directory / "golden" / "input_0.npy")
    with torch.no_grad():
        model = torch.export.load(digits["model"]).module()
        reference = np.concatenate([model(torch.from_numpy(image[None])).numpy() for image in images])
    assert board.shape == reference.shape and board.dtype == np.float32
    assert np.abs(board - reference).max() <= 1e-4 * (reference.max() - reference.min())


def test_an_aarch64_runner_is_refused_by_the_local_board(capsys, arm_bundle):
    with pytest.raises(SystemExit) as done:
        main(["smoke", str(arm_bundle.bundle.directory)])
    said = " ".join(capsys.readouterr().err.split())
    assert done.value.code == 8 and "built for aarch64; this machine is x86_64" in said and "qemu-aarch64" in said


def test_a_python_runner_is_refused_by_the_qemu_board(capsys, digits, tmp_path):
    result = build(BuildRequest(digits["model"], target="onnx", eval=str(digits["eval"]), out=tmp_path),
                   Progress(quiet=True))
    with pytest.raises(SystemExit) as done:
        main(["smoke", str(result.bundle.directory), "--board", "qemu-aarch64"])
    said = " ".join(capsys.readouterr().err.split())
    assert done.value.code == 8 and "runs native aarch64 runners" in said and "is a script" in said


def celu_model(path):
    """An op TVM's ONNX frontend has no converter for (Celu, opset 12)."""
    node = helper.make_node("Celu", ["x"], ["y"], name="the_celu")
    graph = helper.make_graph([node], "celu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("case, code, fragment", [
    ("no-tvm-target", 2, "device profile my-board has no TVM target for --target arm-cpu"),
    ("unsupported-op", 4, "TVM's ONNX frontend has no converter for Celu 'the_celu'"),
    ("no-cross-compiler", 7, "the cross compiler aarch64-linux-gnu-g++ is not installed"),
    ("int8", 2, "target arm-cpu does not support --quant int8"),
])
def test_bad_builds_are_clear_errors_without_a_bundle(capsys, monkeypatch, tmp_path, digits, board_without_tvm_target,
                                                      case, code, fragment):
    model, flags = str(digits["model"]), ["--target", "arm-cpu", "--eval", str(digits["eval"])]
    if case == "no-tvm-target":
        flags += ["--profile", str(board_without_tvm_target)]
    elif case == "unsupported-op":
        model, flags = str(celu_model(tmp_path / "celu.onnx")), ["--target", "arm-cpu"]
    elif case == "no-cross-compiler":
        monkeypatch.setenv("PATH", str(tmp_path))
    else:
        flags += ["--quant", "int8"]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        main(["build", model, *flags, "--out", str(out)])
    assert done.value.code == code and fragment in " ".join(capsys.readouterr().err.split())
    assert not out.exists() or not any(out.iterdir())


def test_profiles_name_their_tvm_targets():
    from edgeopt.profiles import load_profile
    from edgeopt.tvm.compile import target_of

    for name in ("rpi4", "rpi5", "rpi-zero2w", "coral-devboard"):
        target = target_of(load_profile(name).tvm_target)
        assert "arm_cpu" in target.keys and target.kind.name == "llvm"
