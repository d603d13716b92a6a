"""The adb board against a stand-in adb (fake_adb.py; no Android device here): push, run,
clean up, in that order, and the failures adb reports are exit 8."""

from __future__ import annotations

import json

import pytest

from edgeopt.cli import main


def smoke(capsys, bundle, board):
    with pytest.raises(SystemExit) as done:
        main(["smoke", str(bundle), "--board", board, "--runs", "3", "--json"])
    captured = capsys.readouterr()
    return done.value.code, captured.out, " ".join((captured.out + captured.err).split())


def test_push_run_and_clean_up(capsys, fake_adb, android_bundle):
    root, calls = fake_adb
    code, out, _ = smoke(capsys, android_bundle.directory, "adb:emulator-5554")
    assert code == 0 and json.loads(out)["ok"]
    steps = [call[3] if call[2] == "push" else call[3].split()[0] for call in calls()]
    assert steps == ["uname", "mktemp", str(android_bundle.directory) + "/.", "timeout", "rm"]
    run = calls()[3][3].split()
    assert run[2].endswith("/ld-linux-aarch64.so.1") and run[3] == "--library-path"  # through the loader it carries
    assert all(call[:2] == ["-s", "emulator-5554"] for call in calls())
    assert not list((root / "data" / "local" / "tmp").iterdir())  # nothing left on the device


def test_a_bundle_that_needs_glibc_is_refused_before_anything_is_copied(capsys, fake_adb, arm_bundle):
    root, calls = fake_adb
    code, _, said = smoke(capsys, arm_bundle.directory, "adb")
    assert code == 8 and "board adb has no /lib/ld-linux-aarch64.so.1, the dynamic loader (glibc's)" in said
    assert "--profile android-arm64" in said
    assert [call[1].split()[0] for call in calls()] == ["uname", "sh"] and not (root / "data").exists()


@pytest.mark.parametrize("board, setting, fragment", [
    ("adb", "FAKE_ADB_NO_DEVICE", "adb: no devices/emulators found"),
    ("adb:other-serial", None, "adb: device 'other-serial' not found"),
])
def test_no_device_is_exit_8(capsys, monkeypatch, fake_adb, arm_bundle, board, setting, fragment):
    if setting:
        monkeypatch.setenv(setting, "1")
    code, _, said = smoke(capsys, arm_bundle.directory, board)
    assert code == 8 and fragment in said


def test_a_python_runner_needs_python_on_the_device(capsys, fake_adb, onnx_bundle):
    root, calls = fake_adb
    code, _, said = smoke(capsys, onnx_bundle.directory, "adb:emulator-5554")
    assert code == 8 and "has no python3, which this bundle's runner.py needs" in said
    assert not any(call[2] == "push" for call in calls())
