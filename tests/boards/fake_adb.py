"""A stand-in for Android's `adb`, for the adb board's tests where no device exists: a
device whose file system is a local directory ($FAKE_ADB_ROOT), whose CPU is aarch64
(programs run under qemu-aarch64) and which has neither python3 nor glibc (Android's libc is
bionic: only programs that bring their own loader run). Every call is appended to
$FAKE_ADB_LOG as one JSON line. $FAKE_ADB_SERIAL names the one device; $FAKE_ADB_NO_DEVICE
unplugs it. Supports what the board uses: shell (uname, mktemp, sh -c, rm, running a
program), push DIR/. DEST/."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(os.environ["FAKE_ADB_ROOT"])


def local(path: str) -> str:
    return str(ROOT / path.lstrip("/")) if path.startswith("/data/") else path


def main(args: list[str]) -> int:
    with open(os.environ["FAKE_ADB_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    if os.environ.get("FAKE_ADB_NO_DEVICE"):
        print("adb: no devices/emulators found", file=sys.stderr)
        return 1
    if args[:1] == ["-s"]:
        if args[1] != os.environ.get("FAKE_ADB_SERIAL"):
            print(f"adb: device '{args[1]}' not found", file=sys.stderr)
            return 1
        args = args[2:]
    if args[0] == "push":
        source, destination = args[1].rstrip("."), local(args[2])
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return 0
    assert args[0] == "shell" and len(args) == 2, args  # the board sends one quoted command string
    words = shlex.split(args[1])
    if words == ["uname", "-m"]:
        print("aarch64")
        return 0
    if words[0] == "mktemp":
        directory = Path(local(words[-1]))
        directory.parent.mkdir(parents=True, exist_ok=True)
        print("/" + str(Path(tempfile.mkdtemp(prefix="edgeopt-smoke.", dir=directory.parent)).relative_to(ROOT)))
        return 0
    if words[0] == "sh":
        return 0  # `command -v python3`, `test -e /lib/ld-linux-aarch64.so.1` find nothing on this device
    if words[0] == "rm":
        shutil.rmtree(local(words[-1]), ignore_errors=True)
        return 0
    if words[0] == "timeout":
        words = words[2:]
    command = [local(w) for w in words]
    if Path(command[0]).read_bytes()[:4] == b"\x7fELF":
        command = ["qemu-aarch64", *command]  # no -L: no glibc on this device
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
