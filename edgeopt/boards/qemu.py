"""An aarch64 board emulated on this machine: qemu-user runs a bundle's native aarch64 runner
(the arm-cpu target's) with Debian's aarch64 C/C++ libraries as its root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgeopt.errors import BoardError
from edgeopt.tvm.runtime import LOADER, SYSROOT

EMULATOR = ["qemu-aarch64", "-L", str(SYSROOT)]  # an aarch64 program run here, or on a remote (boards/_remote.py)
TIMEOUT_S = 600
ELF_MACHINES = {183: "aarch64", 62: "x86_64", 40: "arm"}  # e_machine values (the ELF specification)


def elf_machine(path: Path) -> str | None:
    """The architecture a program is built for, or None when it is not an ELF program (a script)."""
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), f"ELF machine {int.from_bytes(head[18:20], 'little')}")


def elf_interpreter(path: Path) -> str | None:
    """The dynamic loader a 64-bit little-endian ELF program asks for (PT_INTERP), e.g.
    /lib/ld-linux-aarch64.so.1 for glibc; None for a static program or a script."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    header_offset, entry_size, count = (int.from_bytes(data[a:b], "little") for a, b in ((32, 40), (54, 56), (56, 58)))
    for at in range(header_offset, header_offset + entry_size * count, entry_size):
        if int.from_bytes(data[at:at + 4], "little") == 3:  # PT_INTERP: offset at +8, size at +32
            offset, size = int.from_bytes(data[at + 8:at + 16], "little"), int.from_bytes(data[at + 32:at + 40], "little")
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def runner_command(bundle: Path, directory: str, runner: str) -> list[str]:
    """How to start `runner` of the bundle at `directory` on the board: through the glibc loader
    the bundle carries for a device without glibc (arm-cpu for Android), else directly."""
    if (bundle / LOADER).is_file():
        return [f"{directory}/{LOADER}", "--library-path", directory, f"{directory}/{runner}"]
    return [f"{directory}/{runner}"]


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
        # a bundle that carries glibc runs on nothing but it, as on a device without glibc
        emulator = EMULATOR[:1] if (bundle / LOADER).is_file() else EMULATOR
        command = [*emulator, *runner_command(bundle, str(bundle), runner), "--bundle", str(bundle), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=bundle)
        except subprocess.TimeoutExpired:
            raise BoardError(f"the runner did not finish within {TIMEOUT_S} s under qemu-aarch64") from None
