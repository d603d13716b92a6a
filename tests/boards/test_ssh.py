"""The ssh board against a real OpenSSH server on 127.0.0.1: the aarch64 bundle runs there
(under qemu-user, ?via=qemu-aarch64) and its temporary directory goes; host keys, wrong
architectures, missing runtimes, unreachable boards, timeouts and hostile names are exit 8
(or 2) with a clear message."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeopt.cli import main


def smoke(capsys, bundle, board, *flags):
    with pytest.raises(SystemExit) as done:
        main(["smoke", str(bundle), "--board", board, "--runs", "3", *flags])
    captured = capsys.readouterr()
    return done.value.code, captured.out, " ".join(captured.err.split())


def leftovers() -> list[str]:
    return glob.glob("/tmp/edgeopt-smoke.*")


def test_the_aarch64_bundle_runs_over_ssh_and_leaves_nothing(capsys, sshd, arm_bundle):
    port, key, fingerprint = sshd
    code, out, _ = smoke(capsys, arm_bundle.tarball, f"ssh://root@127.0.0.1:{port}?via=qemu-aarch64",
                         "--identity", key, "--host-key-fingerprint", fingerprint, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["machine"] == "aarch64" and report["outputs"][0]["ok"]
    assert leftovers() == []


def test_known_hosts_decide_without_a_fingerprint(capsys, sshd, arm_bundle, tmp_path, monkeypatch):
    """An unknown host is refused (StrictHostKeyChecking): never accepted blindly."""
    port, key, _ = sshd
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty ~/.ssh/known_hosts
    code, _, said = smoke(capsys, arm_bundle.directory, f"ssh://root@127.0.0.1:{port}?via=qemu-aarch64",
                          "--identity", key)
    assert code == 8 and "Host key verification failed" in said


@pytest.mark.parametrize("case, fragment", [
    ("wrong-fingerprint", "no host key matches SHA256:"),
    ("wrong-architecture", "is x86_64; this bundle's runner is built for aarch64"),
    ("unreachable", "cannot connect: ssh: connect to host 127.0.0.1 port 1: Connection refused"),
    ("timeout", "the runner did not finish within 1 s"),
])
def test_board_failures_are_exit_8(capsys, sshd, arm_bundle, case, fragment):
    port, key, fingerprint = sshd
    board, flags = f"ssh://root@127.0.0.1:{port}?via=qemu-aarch64", ["--identity", key, "--host-key-fingerprint",
                                                                      fingerprint]
    if case == "wrong-fingerprint":
        flags[-1] = "SHA256:" + "A" * 43
    elif case == "wrong-architecture":
        board = f"ssh://root@127.0.0.1:{port}"
    elif case == "unreachable":
        board, flags = "ssh://root@127.0.0.1:1", ["--identity", key]
    else:
        flags += ["--timeout", "1", "--runs", "100000"]
    code, _, said = smoke(capsys, arm_bundle.directory, board, *flags)
    assert code == 8 and fragment in said
    assert leftovers() == []


def test_a_missing_python_runtime_is_named(capsys, sshd, onnx_bundle):
    port, key, fingerprint = sshd
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python and subprocess.run([python, "-c", "import onnxruntime"], capture_output=True).returncode == 0:
        pytest.skip("this machine's system python3 has onnxruntime: nothing is missing")
    code, _, said = smoke(capsys, onnx_bundle.directory, f"ssh://root@127.0.0.1:{port}", "--identity", key,
                          "--host-key-fingerprint", fingerprint)
    assert code == 8 and ("lacks the Python module" in said or "has no python3" in said)
    assert leftovers() == []


def test_names_reach_the_board_quoted(capsys, sshd, arm_bundle, tmp_path):
    """A runner named like a shell command is run as that file, nothing else."""
    port, key, fingerprint = sshd
    bundle = tmp_path / "bundle"
    shutil.copytree(arm_bundle.directory, bundle)
    hostile = "runner; touch edgeopt-pwned $(touch edgeopt-pwned)"
    shutil.copy2(bundle / "runner", bundle / hostile)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "runner": hostile}))
    code, _, _ = smoke(capsys, bundle, f"ssh://root@127.0.0.1:{port}?via=qemu-aarch64", "--identity", key,
                       "--host-key-fingerprint", fingerprint)
    assert code == 0 and not (Path.home() / "edgeopt-pwned").exists() and not Path("edgeopt-pwned").exists()


@pytest.mark.parametrize("board", ["ssh://ro ot@host", "ssh://root@host;reboot", "ssh://root@host:70000",
                                   "ssh://root@host?via=bash"])
def test_bad_addresses_are_usage_errors(capsys, arm_bundle, board):
    code, _, said = smoke(capsys, arm_bundle.directory, board)
    assert code == 2 and "not an SSH board" in said
