"""arm-cpu tuning: a few MetaSchedule trials on this host fill the cache; the next build of the
same model applies them without tuning (its conv reading weights packed at compile time), and the
tuned aarch64 library still matches under qemu."""

from __future__ import annotations

import subprocess
import sys
import time

import onnx_ir as ir
from tvm.target import Target

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.smoke import smoke
from edgeopt.tvm.compile import relax_module
from edgeopt.tvm.tuning import apply, host_target


def test_tuning_is_cached_and_reused(one_conv, tmp_path, monkeypatch):
    monkeypatch.setattr("edgeopt.tvm.tuning.cache_root", lambda: tmp_path / "cache")  # an empty tuning cache
    notes = []
    progress = Progress(quiet=True)
    progress.note = lambda text, style="": notes.append(text)
    start = time.perf_counter()
    first = build(BuildRequest(one_conv, target="arm-cpu", out=tmp_path / "a", tune_trials=4), progress)
    first_s = time.perf_counter() - start
    tuning = first.manifest["artefact"]["tuning"]
    assert tuning["records"] >= 1 and "proxy" in tuning["tuned_on"]
    (database,) = (tmp_path / "cache" / "tvm-tuning").iterdir()
    applied = apply(relax_module(ir.load(one_conv)), Target(host_target()), database)
    assert sorted(var.name_hint for var in applied.get_global_vars()) == ["fused_conv2d_add_relu1_prepacked", "main"]
    assert any("tuning on this host, as a proxy for the board" in n for n in notes)
    start = time.perf_counter()
    second = build(BuildRequest(one_conv, target="arm-cpu", out=tmp_path / "b"), Progress(quiet=True))
    assert second.manifest["artefact"]["tuning"] == tuning
    assert time.perf_counter() - start < 0.5 * first_s
    assert smoke(second.bundle.directory, board="qemu-aarch64", runs=2)["ok"]


def test_a_time_limit_stops_tuning_and_its_workers(one_conv, tmp_path, monkeypatch):
    """Stopped before MetaSchedule recorded anything: the build says so, applies nothing, and
    no tuning process outlives it."""
    import psutil

    def tuning_processes() -> set[int]:  # another build's tuning on this machine is not ours
        return {p.pid for p in psutil.process_iter(["cmdline"]) if "tvm.exec.popen_worker" in " ".join(p.info["cmdline"] or [])
                or "edgeopt.tvm.tuning" in " ".join(p.info["cmdline"] or [])}

    before = tuning_processes()
    monkeypatch.setattr("edgeopt.tvm.tuning.cache_root", lambda: tmp_path / "cache")
    notes = []
    progress = Progress(quiet=True)
    progress.note = lambda text, style="": notes.append(text)
    result = build(BuildRequest(one_conv, target="arm-cpu", out=tmp_path / "a", tune_seconds=2), progress)
    assert "tuning" not in result.manifest["artefact"]
    assert any("the time ran out before MetaSchedule recorded a trial" in n for n in notes)
    assert tuning_processes() - before == set()


def test_progress_reads_the_round_from_metaschedules_log(tmp_path):
    """Lines as MetaSchedule 0.27 writes them; the part before `since` is an earlier tuning's."""
    from edgeopt.tvm.tuning import _stage

    log = tmp_path / "scheduler.log"
    earlier = '[INFO] [task_scheduler.cc:174] Initializing Task #0: "old"\n'
    init = "".join(f'[INFO] [task_scheduler.cc:174] Initializing Task #{i}: "fused_conv2d{i}"\n' for i in range(3))
    picks = "".join(f'[INFO] [task_scheduler.cc:195] TaskScheduler picks Task #{i}: "fused_conv2d{i}"\n' for i in (0, 1))
    log.write_text(earlier + init + picks)
    assert _stage(log, len(earlier)) == "first round: task 2 of 3"
    log.write_text(earlier + init + picks * 3)
    assert _stage(log, len(earlier)) == "3 more batches on the slowest tasks"
    assert _stage(tmp_path / "absent.log", 0) == _stage(log, log.stat().st_size) == "extracting tasks"


def test_tuning_registers_the_cpu_tensor_intrinsics_without_the_gpu_ones():
    script = ("import sys\n"
              "from edgeopt.tvm.tuning import cpu_intrinsics_only\n"
              "cpu_intrinsics_only()\n"
              "from tvm.s_tir import TensorIntrin, meta_schedule\n"
              "meta_schedule.TuneContext()\n"  # imports tvm.s_tir.tensor_intrin: the package stands in
              "print(TensorIntrin.get('dot_4x4_i8i8s32_sdot') is not None, TensorIntrin.get('dot_16x4_vnni') is not None,\n"
              "      'tvm.s_tir.tensor_intrin.cuda' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "False"]
