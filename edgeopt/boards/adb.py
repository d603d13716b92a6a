"""An Android device over adb: `adb` (the only device) or `adb:SERIAL`. The bundle is pushed to
a fresh directory under /data/local/tmp, run with `adb shell`, and removed afterwards."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from edgeopt.boards._remote import SHORT_TIMEOUT_S, RemoteBoard
from edgeopt.errors import BoardError

ADB_FAILURES = ("no devices/emulators found", "not found", "offline", "unauthorized", "more than one device")


class AdbBoard(RemoteBoard):
    temp_root = "/data/local/tmp"

    def __init__(self, serial: str | None = None, timeout: float = 600):
        self.serial, self.timeout = serial, timeout
        self.name = f"adb:{serial}" if serial else "adb"
        if shutil.which("adb") is None:
            raise BoardError("board adb needs Android's platform tools (adb) on PATH",
                             hint="Install them (Debian: apt-get install adb) and connect the device.")

    def _adb(self, *args: str) -> list[str]:
        return ["adb", *(["-s", self.serial] if self.serial else []), *args]

    def execute(self, words: list[str], timeout: float, data: bytes | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self._adb("shell", " ".join(shlex.quote(w) for w in words)), input=data,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BoardError(f"board {self.name}: no answer within {timeout:.0f} s to: {' '.join(words[:3])}",
                             hint="Check the device is connected and awake; --timeout raises the limit.") from None

    def copy(self, bundle: Path, directory: str) -> None:
        try:
            done = subprocess.run(self._adb("push", f"{bundle}/.", f"{directory}/"), capture_output=True,
                                  timeout=SHORT_TIMEOUT_S * 10)
        except subprocess.TimeoutExpired:
            raise BoardError(f"board {self.name}: adb push did not finish") from None
        if done.returncode != 0:
            raise BoardError(f"board {self.name}: cannot copy the bundle: {_said(done)}")

    def check(self, done: subprocess.CompletedProcess, what: str) -> str:
        said = _said(done)
        if done.returncode != 0 and said.startswith(("adb:", "error:")) and any(f in said for f in ADB_FAILURES):
            raise BoardError(f"board {self.name}: cannot {what}: {said}",
                             hint="Connect the device (adb devices lists it), or name it with adb:SERIAL.")
        return done.stdout.decode(errors="replace")


def _said(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"
