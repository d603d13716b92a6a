"""Run the TFLite converter in a child process under a memory limit (edgeopt.tflite.child).

In-process, a converter segfault killed the build with no message, and a runaway
calibration (issue 11: 18 GB and growing) swapped the machine. Here either becomes a
CompileError (exit 7) that names what the converter was doing. The lowered model crosses
as a SavedModel of the same concrete function the converter would have read (the .tflite
comes out byte-identical); calibration samples cross as a stream of .npy records written
and read one at a time, so neither side holds the calibration set.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

import edgeopt
from edgeopt.errors import CompileError
from edgeopt.lower import LoweredModel
from edgeopt.progress import record_child_peak
from edgeopt.quiet import captured_output
from edgeopt.tflite.child import ERROR, LOG, MODEL_DIR, REQUEST, RESULT, SAMPLES, STATUS

MEMORY_ENV = "EDGEOPT_CONVERTER_MEMORY_MB"  # overrides the limit below (tests, CI runners)
AVAILABLE_SHARE = 0.75  # of the RAM available when the converter starts: the rest stays for the build and others
POLL_SECONDS = 0.05
_SERVER = None
TF_INFO = re.compile(r"^[IW]\d{4} |^WARNING: All log messages|^To enable the following instructions")


@dataclass
class Outcome:
    """The converted model, or the converter's exception text and what it logged."""

    data: bytes | None = None
    said: str = ""
    log: str = ""


def memory_limit_mb() -> int:
    """$EDGEOPT_CONVERTER_MEMORY_MB, else a share of the memory available now (MemAvailable)."""
    if os.environ.get(MEMORY_ENV):
        return int(os.environ[MEMORY_ENV])
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available_kb = int(meminfo.split("MemAvailable:")[1].split()[0])
    except (OSError, IndexError, ValueError):  # no /proc (macOS): no limit beyond the machine's
        return 1 << 30
    return int(available_kb / 1024 * AVAILABLE_SHARE)


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):  # exited, or no /proc
        return 0.0


def _write_inputs(workdir: Path, lowered: LoweredModel, quant: str, io_dtype: str,
                  representative: Callable[[], Iterable] | None, sparse: bool) -> None:
    """The SavedModel, the calibration samples (streamed, one record per array) and the request."""
    with captured_output():
        tf_save(lowered, workdir / MODEL_DIR)
    count = 0
    if representative is not None:
        with open(workdir / SAMPLES, "wb") as stream:
            for sample in representative():
                for array in sample:
                    np.save(stream, np.asarray(array), allow_pickle=False)
                count += 1
    request = {"quant": quant, "io_dtype": io_dtype, "samples": count, "inputs": len(lowered.inputs), "sparse": sparse}
    (workdir / REQUEST).write_text(json.dumps(request))


def tf_save(lowered: LoweredModel, path: Path) -> None:
    import tensorflow as tf

    tf.saved_model.save(lowered, str(path), signatures={"serving_default": lowered.function()})


def _status(workdir: Path) -> str:
    try:
        return (workdir / STATUS).read_text() or "starting"
    except OSError:
        return "starting"


def _log_tail(workdir: Path, lines: int = 4) -> str:
    """The child's last words, without TensorFlow's I/W info lines."""
    try:
        text = (workdir / LOG).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and not TF_INFO.match(line)]
    return "\n".join(kept[-lines:])


class _Server:
    """The fork server (edgeopt.tflite.child), started on the first conversion and kept.
    Its replies are read from the raw pipe, line by line: a buffered reader could swallow a
    result line that select() would then wait for in vain."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "edgeopt.tflite.child"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                        env={**os.environ, "PYTHONPATH": _pythonpath()})
        self.pending = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def _line(self, timeout: float | None) -> str | None:
        """The server's next line, or None when it says nothing within `timeout` seconds."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise CompileError("the TFLite converter's fork server exited",
                                   hint="Run `python -m edgeopt.tflite.child < /dev/null` to see why it cannot start.")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def start(self, workdir: Path) -> int:
        self.process.stdin.write(f"{workdir}\n".encode())
        return int(self._line(None))

    def result(self, timeout: float | None = None) -> tuple[int, float] | None:
        """(exit code, negative for a signal; peak RSS in MB) of the converter just run, or
        None while it runs on after `timeout` seconds."""
        line = self._line(timeout)
        if line is None:
            return None
        code, peak_kb = line.split()
        return int(code), int(peak_kb) / 1024

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _pythonpath() -> str:
    """This edgeopt first, so that the server imports the same code as the build."""
    root = str(Path(edgeopt.__file__).resolve().parents[1])
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def start_converter() -> None:
    """Start the fork server now, so that its TensorFlow import overlaps the caller's lowering."""
    _server()


def _server() -> _Server:
    global _SERVER
    if _SERVER is None or not _SERVER.alive():
        _SERVER = _Server()
    return _SERVER


def _watch(server: _Server, pid: int, workdir: Path, limit_mb: int, quant: str) -> None:
    """Wait for the converter; kill it past the memory limit. Raises CompileError naming the stage."""
    while (result := server.result(POLL_SECONDS)) is None:
        rss = _rss_mb(pid)
        if rss > limit_mb:
            stage = _status(workdir)
            os.kill(pid, signal.SIGKILL)
            server.result()
            raise CompileError(
                f"the TFLite converter ({quant}) was stopped while {stage}: it used {rss:,.0f} MB, "
                f"more than its limit of {limit_mb:,} MB",
                hint=f"The limit is {AVAILABLE_SHARE:.0%} of the RAM available at the start (${MEMORY_ENV} sets it). "
                     "Free memory, or build with another --quant; report it if the model is small.")
    code, peak_mb = result
    record_child_peak(peak_mb)
    if code < 0:
        raise CompileError(f"the TFLite converter ({quant}) crashed ({signal.Signals(-code).name}) while "
                           f"{_status(workdir)}",
                           hint="Report this with the model attached; meanwhile try another --quant mode or "
                                f"--target onnx.\n{_log_tail(workdir)}".rstrip())
    if code != 0:
        raise CompileError(f"the TFLite converter ({quant}) failed while {_status(workdir)}: {_log_tail(workdir)}",
                           hint="Report this with the model attached; meanwhile try another --quant mode.")


def _stop(pid: int) -> None:
    global _SERVER
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _SERVER.stop()
    _SERVER = None


def run_converter(lowered: LoweredModel, quant: str, representative: Callable[[], Iterable] | None,
                  io_dtype: str, sparse: bool = False) -> Outcome:
    """Convert `lowered` in a child process; the model, or what the converter said when it failed.
    `sparse`: weights in TFLite's sparse encoding (edgeopt.tflite.sparse_encoding)."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-convert-") as directory:
        workdir = Path(directory)
        _write_inputs(workdir, lowered, quant, io_dtype, representative, sparse)
        server = _server()
        pid = server.start(workdir)
        try:
            _watch(server, pid, workdir, memory_limit_mb(), quant)
        except KeyboardInterrupt:  # leave no converter behind, and no server owing a reply
            _stop(pid)
            raise
        if (workdir / ERROR).exists():
            error = json.loads((workdir / ERROR).read_text())
            return Outcome(said=error["said"], log=error["log"])
        return Outcome(data=(workdir / RESULT).read_bytes())
