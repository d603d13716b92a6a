"""Boards to test against: a real OpenSSH server on 127.0.0.1 with throwaway keys, a stand-in
adb (fake_adb.py), and an arm-cpu bundle of the digits CNN (fixtures: pytest's importlib
mode keeps test modules from importing this file)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from loopback import free_port

SSHD = Path("/usr/sbin/sshd")


@pytest.fixture(scope="session")
def arm_bundle(digits, tmp_path_factory):
    return build(BuildRequest(digits["model"], target="arm-cpu", profile="rpi4", eval=str(digits["eval"]),
                              out=tmp_path_factory.mktemp("arm")), Progress(quiet=True)).bundle


@pytest.fixture(scope="session")
def android_bundle(digits, tmp_path_factory):
    """arm-cpu for a phone: the bundle carries glibc's loader and libraries."""
    return build(BuildRequest(digits["model"], target="arm-cpu", profile="android-arm64", eval=str(digits["eval"]),
                              out=tmp_path_factory.mktemp("android")), Progress(quiet=True)).bundle


@pytest.fixture(scope="session")
def onnx_bundle(digits, tmp_path_factory):
    return build(BuildRequest(digits["model"], target="onnx", eval=str(digits["eval"]),
                              out=tmp_path_factory.mktemp("onnx")), Progress(quiet=True)).bundle


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """(port, client key, host key fingerprint) of an sshd serving this user on 127.0.0.1."""
    if not SSHD.exists():
        pytest.fail("no /usr/sbin/sshd: run scripts/setup_arm.sh (make install does)")
    work = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / key)], check=True)
    (work / "authorized_keys").write_text((work / "client_key.pub").read_text())
    port = free_port()
    (work / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host_key'}\nAuthorizedKeysFile {work / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {work / 'sshd.pid'}\nLogLevel ERROR\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(work / "sshd_config")], stderr=subprocess.PIPE)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(work / "host_key.pub")], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    yield port, str(work / "client_key"), fingerprint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """The stand-in adb first on PATH; returns (device root, read the logged calls)."""
    bin_dir, root, log = tmp_path / "bin", tmp_path / "device", tmp_path / "adb.log"
    bin_dir.mkdir()
    root.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\n" + (Path(__file__).parent / "fake_adb.py").read_text())
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_SERIAL", "emulator-5554")
    return root, lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
