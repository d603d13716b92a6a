"""Run Google's edgetpu_compiler when this machine has it (x86-64 Debian-family Linux with the
Coral apt repo); otherwise say how to finish the compile elsewhere.

Flags as documented at https://coral.ai/docs/edgetpu/compiler/#usage: -s (print the op
table), -o (output directory), --timeout_sec, -n/--num_segments (pipelining).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeopt.edgetpu.log import CompilerLog, parse_log
from edgeopt.errors import CompileError, UsageError

COMPILER = "edgetpu_compiler"
DEFAULT_TIMEOUT_S = 180  # the compiler's own default (--timeout_sec)


@dataclass(frozen=True)
class EdgeTpuOptions:
    compiler: str | None = None  # path; None: look on PATH
    require_compiler: bool = False
    num_segments: int | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    fix: bool = False  # --edgetpu-fix: rewrite the model until it maps whole (edgeopt/edgetpu/fix.py)


@dataclass
class Compiled:
    files: dict[str, bytes]  # the compiled model(s), by file name
    log: CompilerLog
    text: str


def command(model_name: str, options: EdgeTpuOptions) -> list[str]:
    """The compiler command line for `model_name`, as run here or printed for another host."""
    args = [COMPILER, "-s", "-o", ".", "--timeout_sec", str(options.timeout_s)]
    if options.num_segments:
        args += ["--num_segments", str(options.num_segments)]
    return args + [model_name]


def find_compiler(options: EdgeTpuOptions) -> str | None:
    if options.compiler:
        path = Path(options.compiler)
        if not (path.is_file() and shutil.which(str(path))):
            raise UsageError(f"--edgetpu-compiler {options.compiler}: not an executable file",
                             hint="Pass the path of edgetpu_compiler, or drop the flag to look it up on PATH.")
        return str(path.resolve())
    found = shutil.which(COMPILER)
    if found is None and options.require_compiler:
        raise CompileError("edgetpu_compiler is not installed, and --require-edgetpu-compiler was given",
                           hint="Install it from Coral's apt repo on an x86-64 Debian/Ubuntu host "
                                "(https://coral.ai/docs/edgetpu/compiler/), or drop --require-edgetpu-compiler "
                                "to get the Edge TPU-ready model and the command to finish elsewhere.")
    return found


def run_compiler(executable: str, model: bytes, model_name: str, options: EdgeTpuOptions) -> Compiled:
    """Compile in a scratch directory; raise CompileError with the compiler's own words on failure."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-edgetpu-") as scratch:
        work = Path(scratch)
        (work / model_name).write_bytes(model)
        args = [executable, *command(model_name, options)[1:]]
        try:
            done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=options.timeout_s + 30)
        except subprocess.TimeoutExpired:
            raise CompileError(f"edgetpu_compiler did not finish within {options.timeout_s + 30} s",
                               hint="Raise --edgetpu-timeout, or split the model with --edgetpu-segments.") from None
        text = done.stdout + done.stderr
        log = parse_log(text)
        outputs = {p.name: p.read_bytes() for p in sorted(work.glob("*_edgetpu.tflite"))}
        if done.returncode != 0 or log.errors or not outputs:
            said = "; ".join(log.errors) or (text.strip().splitlines() or ["no output"])[-1]
            raise CompileError(f"edgetpu_compiler failed on {model_name} (exit {done.returncode}): {said}",
                               hint="See the analysis above for the op it names; `edgeopt check --target coral` "
                                    "explains each rule.", details={"log": text})
        return Compiled(outputs, log, text)
