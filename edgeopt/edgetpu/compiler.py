"""Run Google's edgetpu_compiler when this machine has it (x86-64 Debian-family Linux with the
Coral apt repo); otherwise say how to finish the compile elsewhere.

Flags as documented at https://coral.ai/docs/edgetpu/compiler/#usage: -s (print the op
table), -o (output directory), --timeout_sec, -n/--num_segments (pipelining).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeopt.edgetpu.log import CompilerLog, parse_log
from edgeopt.errors import CompileError, UsageError

COMPILER = "edgetpu_compiler"
DEFAULT_TIMEOUT_S = 180  # the compiler's own default (--timeout_sec)
GRACE_S = 30  # we wait this much past --timeout_sec, so the compiler's own timer speaks first


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


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError):  # no process groups (Windows), or already gone
        process.kill()
    process.communicate()


def run_compiler(executable: str, model: bytes, model_name: str, options: EdgeTpuOptions) -> Compiled:
    """Compile in a scratch directory; raise CompileError with the compiler's own words on failure."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-edgetpu-") as scratch:
        work = Path(scratch)
        (work / model_name).write_bytes(model)
        args = [executable, *command(model_name, options)[1:]]
        # its own process group, so a timeout also ends what a wrapper (a docker run, a script) started
        with subprocess.Popen(args, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as done:
            try:
                stdout, stderr = done.communicate(timeout=options.timeout_s + GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(done)
                raise CompileError(f"edgetpu_compiler did not finish within {options.timeout_s + GRACE_S} s",
                                   hint="Raise --edgetpu-timeout, or split the model with --edgetpu-segments.") from None
            except BaseException:  # Ctrl-C: its own session does not get the signal
                _kill_group(done)
                raise
        text = stdout + stderr
        log = parse_log(text)
        outputs = {p.name: p.read_bytes() for p in sorted(work.glob("*_edgetpu.tflite"))}
        if done.returncode != 0 or log.errors or not outputs:
            last = (text.strip().splitlines() or ["nothing printed"])[-1]
            if not (done.returncode or log.errors):  # it says it succeeded, but left no compiled model
                last = f"it wrote no {Path(model_name).stem}_edgetpu.tflite (its last line: {last})"
            said = "; ".join(log.errors) or last
            raise CompileError(f"edgetpu_compiler failed on {model_name} (exit {done.returncode}): {said}",
                               hint="See the analysis above for the op it names; `edgeopt check --target coral` "
                                    "explains each rule.", details={"log": text})
        return Compiled(outputs, log, text)
