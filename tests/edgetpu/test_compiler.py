"""Running edgetpu_compiler: the real subprocess path, with small executables written here in
its place (a compiler that is not executable, hangs, fails, or writes nothing), since the real
one installs only from Coral's apt repo. Each prints what the real compiler prints in that case
(tests/edgetpu/logs/, with sources)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from edgeopt.edgetpu import compiler
from edgeopt.edgetpu.compiler import EdgeTpuOptions, find_compiler, run_compiler
from edgeopt.errors import CompileError, UsageError
from edgetpu.test_log import LOGS, fixture

MODEL = b"TFL3 stands in for a model; the scripts never parse it"


def script(tmp_path: Path, body: str, name: str = "edgetpu_compiler", executable: bool = True) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def running(pid: int) -> bool:
    """Whether process `pid` still runs (a killed one may stay a zombie until init reaps it)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def compile_with(path: Path, **options) -> compiler.Compiled:
    return run_compiler(find_compiler(EdgeTpuOptions(str(path), **options)), MODEL, "model.tflite",
                        EdgeTpuOptions(str(path), **options))


def test_a_compiler_that_writes_its_model_is_run_with_the_documented_flags(tmp_path):
    log = LOGS / "fully_mapped_yolov7_tiny_search_delegate_1672.txt"
    path = script(tmp_path, f"""sed '1,/^$/d' {log}
echo "ARGS $*"
for model; do :; done
cp "$model" "${{model%.tflite}}_edgetpu.tflite"
""")
    done = compile_with(path, num_segments=3, timeout_s=90)
    assert done.files == {"model_edgetpu.tflite": MODEL}
    assert "ARGS -s -o . --timeout_sec 90 --num_segments 3 model.tflite" in done.text
    assert done.log.version == "16.0.384591198" and done.log.summary()["total_ops"] == 246
    assert done.text.startswith(fixture(log.name))


@pytest.mark.parametrize("kind", ["not-executable", "directory", "missing"])
def test_a_compiler_path_that_cannot_run_is_a_usage_error(tmp_path, kind):
    path = {"not-executable": lambda: script(tmp_path, "exit 0\n", executable=False),
            "directory": lambda: tmp_path, "missing": lambda: tmp_path / "nowhere" / "edgetpu_compiler"}[kind]()
    with pytest.raises(UsageError, match="not an executable file") as info:
        find_compiler(EdgeTpuOptions(str(path)))
    assert info.value.exit_code == 2 and str(path) in info.value.message


def test_the_compiler_is_found_on_path(tmp_path, monkeypatch):
    path = script(tmp_path, "exit 0\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert find_compiler(EdgeTpuOptions()) == str(path)


def test_a_compiler_that_fails_is_exit_7_in_its_own_words(tmp_path):
    log = LOGS / "internal_compiler_error_358.txt"
    path = script(tmp_path, f"sed '1,/^$/d' {log} | tail -n +2\nexit 1\n")  # without the quoted shell command
    with pytest.raises(CompileError) as info:
        compile_with(path)
    assert info.value.exit_code == 7
    assert info.value.message == "edgetpu_compiler failed on model.tflite (exit 1): Internal compiler error. Aborting!"
    assert "Internal compiler error. Aborting!" in info.value.details["log"]


def test_a_compiler_that_crashes_without_a_log_is_named_by_its_last_line(tmp_path):
    path = script(tmp_path, "echo 'Edge TPU Compiler version 16.0.384591198'\necho 'Segmentation fault' >&2\nexit 139\n")
    with pytest.raises(CompileError) as info:
        compile_with(path)
    assert info.value.message == "edgetpu_compiler failed on model.tflite (exit 139): Segmentation fault"


def test_a_compiler_that_succeeds_but_writes_nothing_says_so(tmp_path):
    path = script(tmp_path, "echo 'Edge TPU Compiler version 16.0.384591198'\necho 'Model compiled successfully in 3 ms.'\n")
    with pytest.raises(CompileError) as info:
        compile_with(path)
    assert info.value.message == ("edgetpu_compiler failed on model.tflite (exit 0): it wrote no model_edgetpu.tflite "
                                  "(its last line: Model compiled successfully in 3 ms.)")


def test_a_compiler_that_hangs_is_stopped_with_what_it_started(tmp_path, monkeypatch):
    """A wrapper script (as a docker run of the compiler is) whose child hangs: the timeout
    ends both, not only the script."""
    monkeypatch.setattr(compiler, "GRACE_S", 0)  # the wait is --edgetpu-timeout plus this grace (30 s)
    pid_file = tmp_path / "child.pid"
    path = script(tmp_path, f"sleep 60 &\necho $! > {pid_file}\nwait\n")
    start = time.monotonic()
    with pytest.raises(CompileError, match="edgetpu_compiler did not finish within 1 s") as info:
        compile_with(path, timeout_s=1)
    assert time.monotonic() - start < 10 and info.value.exit_code == 7
    assert "--edgetpu-timeout" in info.value.hint
    child = int(pid_file.read_text())
    assert not running(child)  # the hanging child is gone too
