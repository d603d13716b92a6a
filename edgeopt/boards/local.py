"""The machine edgeopt runs on, used as the board: the runner runs under this Python."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from edgeopt.errors import BoardError

TIMEOUT_S = 600


class LocalBoard:
    name = "local"

    def run(self, bundle: Path, runner: str, args: list[str]) -> subprocess.CompletedProcess:
        from edgeopt.boards.qemu import elf_machine

        machine = elf_machine(bundle / runner)
        if machine is not None and machine != platform.machine():
            raise BoardError(f"this bundle's runner is built for {machine}; this machine is {platform.machine()}",
                             hint="Use --board qemu-aarch64 to emulate the board here, or --board ssh://user@host.")
        command = ([sys.executable] if machine is None else []) + [str(bundle / runner), "--bundle", str(bundle), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=bundle)
        except subprocess.TimeoutExpired:
            raise BoardError(f"the runner did not finish within {TIMEOUT_S} s on the local board") from None
