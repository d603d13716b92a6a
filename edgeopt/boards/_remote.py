"""What every remote board does with a bundle (ssh, adb): check the board can run its runner,
copy it into a fresh temporary directory there, run it, and remove the directory whatever
happened. A board supplies how to execute a command (`execute`, words shell-quoted there) and
how to copy a directory (`copy`), and what its failures mean (`check`)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from edgeopt.boards.qemu import EMULATOR, elf_interpreter, elf_machine, runner_command
from edgeopt.tvm.runtime import LOADER
from edgeopt.errors import BoardError

SHORT_TIMEOUT_S = 30
TIMED_OUT = 124  # coreutils' and toybox's `timeout`, which bounds the runner on the board itself
VIA = {"qemu-aarch64": EMULATOR}  # a board emulated behind ssh
MODULE_HINTS = {"onnxruntime": "pip install numpy onnxruntime", "numpy": "pip install numpy",
                "tflite_runtime": "pip install tflite-runtime (or ai-edge-litert)",
                "ai_edge_litert": "pip install ai-edge-litert (or tflite-runtime)"}


class RemoteBoard:
    name: str
    temp_root = "/tmp"
    via: str | None = None  # runs programs of another architecture through this emulator
    timeout: float

    def execute(self, words: list[str], timeout: float, data: bytes | None = None) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def copy(self, bundle: Path, directory: str) -> None:
        raise NotImplementedError

    def check(self, done: subprocess.CompletedProcess, what: str) -> str:
        """The command's stdout; a failure of the connection itself is a BoardError."""
        raise NotImplementedError

    def _ask(self, words: list[str], what: str) -> str:
        return self.check(self.execute(words, SHORT_TIMEOUT_S), what)

    def run(self, bundle: Path, runner: str, args: list[str]) -> subprocess.CompletedProcess:
        machine = elf_machine(bundle / runner)
        remote_machine = self._ask(["uname", "-m"], "connect").strip()
        native = machine is None or machine == remote_machine
        if not native and not (self.via == "qemu-aarch64" and machine == "aarch64"):
            raise BoardError(f"board {self.name} is {remote_machine}; this bundle's runner is built for {machine}",
                             hint="Build for the board's architecture, or smoke-test on a board that has it.")
        loader = elf_interpreter(bundle / runner) if native and not (bundle / LOADER).is_file() else None
        if loader and not self._ask(["sh", "-c", f"test -e {shlex.quote(loader)} && echo found || true"],
                                    "look for the C library").strip():
            raise BoardError(f"board {self.name} has no {loader}, the dynamic loader (glibc's) that this bundle's "
                             f"{runner} needs; Android's C library is bionic",
                             hint="For Android build with --profile android-arm64 (its arm-cpu bundles carry glibc); "
                                  "else smoke-test on a board with glibc 2.28 or newer.")
        if machine is None and not self._ask(["sh", "-c", "command -v python3 || true"], "look for python3").strip():
            raise BoardError(f"board {self.name} has no python3, which this bundle's {runner} needs",
                             hint="Install python3 and the runtime the bundle's README names on the board.")
        directory = self._ask(["mktemp", "-d", f"{self.temp_root}/edgeopt-smoke.XXXXXX"],
                              "make a temporary directory").strip()
        try:
            self.copy(bundle, directory)
            program = ["python3"] if machine is None else [] if native else VIA[self.via]
            done = self.execute(["timeout", str(round(self.timeout)), *program,
                                 *runner_command(bundle, directory, runner), "--bundle", directory, *args],
                                self.timeout + SHORT_TIMEOUT_S)
            self.check(done, "run the bundle")
            if done.returncode == TIMED_OUT:
                raise BoardError(f"board {self.name}: the runner did not finish within {self.timeout:.0f} s",
                                 hint="--timeout raises the limit; --runs lowers the work.")
        finally:
            self.execute(["rm", "-rf", "--", directory], SHORT_TIMEOUT_S)
        stdout, stderr = (s.decode(errors="replace") if isinstance(s, bytes) else s for s in (done.stdout, done.stderr))
        missing = re.search(r"No module named '([A-Za-z0-9_.]+)'", stderr)
        if missing:
            module = missing.group(1).split(".")[0]
            raise BoardError(f"board {self.name} lacks the Python module {module} that this bundle's {runner} needs",
                             hint=MODULE_HINTS.get(module, f"pip install {module}") + " on the board.")
        return subprocess.CompletedProcess(done.args, done.returncode, stdout, stderr)
