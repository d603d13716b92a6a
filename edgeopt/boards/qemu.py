"""An aarch64 board emulated on this machine: qemu-user runs a bundle's native aarch64 runner
(the arm-cpu target's) with Debian's aarch64 C/C++ libraries as its root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgeopt.errors import BoardError

SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross, installed with the cross compiler
EMULATOR = ["qemu-aarch64", "-L", str(SYSROOT)]  # an aarch64 program run here, or on a remote (boards/_remote.py)
TIMEOUT_S = 600
ELF_MACHINES = {183: "aarch64", 62: "x86_64", 40: "arm"}  # e_machine values (the ELF specification)


def elf_machine(path: Path) -> str | None:
    """The architecture a program is built for, or None when it is not an ELF program (a script)."""
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), f"ELF machine {int.from_bytes(head[18:20], 'little')}")


class QemuBoard:
    name = "qemu-aarch64"

    def run(self, bundle: Path, runner: str, args: list[str]) -> subprocess.CompletedProcess:
        machine = elf_machine(bundle / runner)
        if machine != "aarch64":
            raise BoardError(f"board {self.name} runs native aarch64 runners (the arm-cpu target's); this bundle's "
                             f"runner {runner} is {'a script' if machine is None else 'built for ' + machine}",
                             hint="Smoke-test it with --board local, or on a real board (--board ssh://user@host).")
        if shutil.which(EMULATOR[0]) is None or not SYSROOT.is_dir():
            raise BoardError("board qemu-aarch64 needs qemu-user and Debian's aarch64 libraries",
                             hint="Run scripts/setup_arm.sh (or `make install`).")
        command = [*EMULATOR, str(bundle / runner), "--bundle", str(bundle), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=bundle)
        except subprocess.TimeoutExpired:
            raise BoardError(f"the runner did not finish within {TIMEOUT_S} s under qemu-aarch64") from None
