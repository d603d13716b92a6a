"""The machine edgeopt runs on, used as the board: the runner runs under this Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeopt.errors import BoardError

TIMEOUT_S = 600


class LocalBoard:
    name = "local"

    def run(self, bundle: Path, runner: str, args: list[str]) -> subprocess.CompletedProcess:
        command = [sys.executable, str(bundle / runner), "--bundle", str(bundle), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=bundle)
        except subprocess.TimeoutExpired:
            raise BoardError(f"the runner did not finish within {TIMEOUT_S} s on the local board") from None
