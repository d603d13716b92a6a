"""MetaSchedule tuning for the arm-cpu target, with a cache that later builds reuse.

Tuning measures candidate schedules on a real CPU. Without the board at hand it runs on this
host, as a proxy for the board (the report says so): MetaSchedule's database is looked up by
workload, not by target, so the schedules found here apply to the board's compile. The
database lives under the user's cache directory, keyed by (model IR, tuning target, TVM
version); a build that finds it applies it at once and tunes only when asked for more trials.

Tuning runs in a child process (`python -m edgeopt.tvm.tuning`), which bounds it in time and
keeps MetaSchedule's worker pools out of the build's process. MetaSchedule's first round
visits every task once and writes nothing to the database until it ends (later rounds write
as each task's batch finishes), so a time limit shorter than the first round keeps nothing;
rounds are kept small (TRIALS_PER_ROUND). `--tune-trials` runs to its end. With a TVM RPC
tracker (edgeopt.tvm.tracker) the candidates are timed on the board instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeopt.errors import CompileError
from edgeopt.tvm.runtime import CROSS_COMPILER, cache_root, versions

RECORDS = "database_tuning_record.json"
CANDIDATES = "candidates"  # the libraries being measured, under the work directory
SCHEDULER_LOG = "tvm.s_tir.meta_schedule.logging.task_scheduler.log"  # MetaSchedule's, under work_dir/logs
PROGRESS_EVERY_S = 10.0
CPU_INTRINSICS = ("x86", "arm_cpu", "riscv_cpu")  # of tvm.s_tir.tensor_intrin: what an llvm target may tensorize with
WORKLOADS = "prepacked"  # how tasks are extracted (_child); in the cache key, since the database is looked up by workload
TRIALS_WHEN_TIMED = 100_000  # --tune-time alone: the time ends the tuning
TRIALS_PER_ROUND = 16  # candidates measured per task and round: a candidate costs 1-2 s to link and time
# here, and with 32 MobileNetV2's first round (nothing is recorded before it ends) was at task 17 of 32 after
# 19 minutes; with 16 it takes 10-13 minutes for MobileNetV2 and Lite0, leaving the rest of 30 for the slowest tasks


def host_target() -> dict:
    """This machine's CPU by name: without `mcpu` LLVM emits baseline x86-64 code (SSE2), and
    tuning would rank schedules for vector units the host does not use."""
    from tvm.target import codegen

    return {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": os.cpu_count() or 1}


def cache_dir(model_bytes: bytes, tuning_target: dict | str) -> Path:
    key = hashlib.sha256(model_bytes).hexdigest()[:16]
    target = hashlib.sha256(json.dumps(tuning_target, sort_keys=True).encode()).hexdigest()[:8]
    return cache_root() / "tvm-tuning" / f"{key}-{target}-tvm-{versions()['apache-tvm']}-{WORKLOADS}"


def records(work_dir: Path) -> int:
    path = work_dir / RECORDS
    return sum(1 for _ in path.open()) if path.exists() else 0


def tune(module, tuning_target: dict | str, trials: int, seconds: float | None, work_dir: Path, note,
         tracker: str = "") -> dict:
    """Tune `module` for up to `trials` measured candidates or `seconds`, whichever ends first;
    on this host, or on the board behind `tracker` (host:port:key, edgeopt.tvm.tracker)."""
    import tvm

    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "module.json").write_text(tvm.ir.save_json(module))
    before, start = records(work_dir), time.perf_counter()
    scheduler_log = work_dir / "logs" / SCHEDULER_LOG
    since = scheduler_log.stat().st_size if scheduler_log.exists() else 0
    log = work_dir / "tuning.log"
    with log.open("wb") as output:
        child = subprocess.Popen([sys.executable, "-m", "edgeopt.tvm.tuning", str(work_dir), str(trials),
                                  json.dumps(tuning_target), tracker], stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # its own process group: its worker pools go with it
    shown, timed_out = start, False
    try:
        while child.poll() is None:
            time.sleep(0.5)
            now = time.perf_counter()
            if seconds is not None and now - start > seconds:
                timed_out = True
                break
            if now - shown >= PROGRESS_EVERY_S:
                shown = now
                left = "" if seconds is None else f", at most {max(seconds - (now - start), 0):.0f} s left"
                note(f"tuning: {now - start:.0f} s, {_stage(scheduler_log, since)}, "
                     f"{records(work_dir) - before} trials recorded{left}")
    finally:  # the time is up, or the build was interrupted: the child and its worker pools go
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    shutil.rmtree(work_dir / CANDIDATES, ignore_errors=True)  # a killed child's last batch
    said = log.read_text(errors="replace")
    if timed_out and records(work_dir) == before:
        note("tuning: the time ran out before MetaSchedule recorded a trial (it records nothing until its first "
             "round over all tasks ends); nothing to apply: give more time, or --tune-trials N, which runs to its end")
    if child.returncode not in (0, None) and not timed_out:
        raise CompileError(f"MetaSchedule tuning failed (exit {child.returncode}): "
                           f"{said.strip().splitlines()[-1] if said.strip() else 'no output'}",
                           hint="Build without --tune-trials, or report the model.")
    return {"trials_measured": records(work_dir) - before, "seconds": round(time.perf_counter() - start, 1),
            "stopped_by_time": timed_out}


def in_process_builder(scratch: Path, link=None):
    """A MetaSchedule builder that compiles candidates in the tuning process itself.

    MetaSchedule's LocalBuilder starts fresh worker processes for every batch of candidates,
    and each imports TVM and `tvm.s_tir.tensor_intrin` (every GPU and CPU tensor intrinsic:
    24 s on a 2-core host): three quarters of a tuning round went to that. A candidate compiles
    in 0.05 s; the tuning child is already its own process, which a crash or the time limit ends.
    Each candidate is linked into a shared library here (`link`: the cross compiler for a board
    behind an RPC tracker), so the board needs no compiler to load it; under `scratch`, which
    `tune` removes, as MetaSchedule removes each once measured."""
    from tvm.driver import build
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    def export(module) -> str:
        scratch.mkdir(parents=True, exist_ok=True)
        path = os.path.join(tempfile.mkdtemp(dir=scratch), "candidate.so")
        module.export_library(path, fcompile=link)
        return path

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    module = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(item.mod)
                    results.append(ms.builder.BuilderResult(export(build(module, target=item.target)), None))
                except Exception as exc:  # a candidate that does not compile is MetaSchedule's to skip
                    results.append(ms.builder.BuilderResult(None, str(exc)))
            return results

    return InProcessBuilder()


def _stage(scheduler_log: Path, since: int) -> str:
    """Where MetaSchedule is, read from its scheduler log (the part written since `since`)."""
    text = ""
    if scheduler_log.exists():
        with scheduler_log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
    tasks, picked = text.count("Initializing Task #"), text.count("picks Task #")
    if tasks == 0:
        return "extracting tasks"
    if picked <= tasks:
        return f"first round: task {picked} of {tasks}"
    return f"{picked - tasks} more batches on the slowest tasks"


def tuned_database(module, model_bytes: bytes, board_target, trials: int | None, seconds: float | None,
                   tracker: str | None, note) -> tuple[Path | None, dict]:
    """Tune when asked (on the board behind `tracker`, else on this host as its proxy), then the
    database to compile with and what it holds: the board's own measurements first, else this
    host's; (None, {}) when the model was never tuned."""
    on_board, on_host = cache_dir(model_bytes, board_target), cache_dir(model_bytes, host_target())
    if trials or seconds:
        where = f"the board behind TVM RPC tracker {tracker}" if tracker else "this host, as a proxy for the board"
        note(f"tuning on {where} (MetaSchedule)")
        done = tune(module, board_target if tracker else host_target(), trials or TRIALS_WHEN_TIMED, seconds,
                    on_board if tracker else on_host, note, tracker or "")
        note(f"tuning: {done['trials_measured']} trials in {done['seconds']:.0f} s")
    for database, where in ((on_board, "the board (TVM RPC tracker)"), (on_host, "this host, as a proxy for the board")):
        count = records(database)
        if count:
            return database, {"records": count, "tuned_on": where}
    return None, {}


def apply(module, target, work_dir: Path):
    """`module` with the database's best schedules, for `target` (a workload it lacks stays
    with TVM's default schedule). With weight prepacking: a schedule that rewrote a weight's
    layout leaves a preprocessing function, which FoldConstant runs here on the bound weights,
    so the library holds the packed weights and `main` keeps its inputs. The pipeline's
    `main_transform_params` (for weights passed at run time) goes: ours are bound."""
    import tvm
    from tvm import relax

    with tvm.target.Target(target):
        module = relax.get_pipeline("static_shape_tuning", target=target, total_trials=0, work_dir=str(work_dir),
                                    cpu_weight_prepack=True)(module)
    if "main_transform_params" in [var.name_hint for var in module.get_global_vars()]:
        del module["main_transform_params"]
    return relax.transform.DeadCodeElimination(["main"])(module)


def _linker(target):
    """The cross compiler for an aarch64 target (a board behind a tracker), else the host's."""
    from tvm.support import cc

    return cc.cross_compiler(CROSS_COMPILER) if str(target.attrs.get("mtriple", "")).startswith("aarch64") else None


def cpu_intrinsics_only() -> None:
    """Register the CPU tensor intrinsics only. MetaSchedule's TuneContext imports
    `tvm.s_tir.tensor_intrin`, whose package imports the GPU ones too; each of their hundreds of
    TVMScript functions walks the Python stack with its source lines (`inspect.stack()`): 26 s of
    a tuning child's start on a 2-core host, against 1.3 s for the CPU modules alone."""
    import importlib
    import types

    import tvm.s_tir

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    package = types.ModuleType(name)
    package.__path__, package.__package__ = [os.path.join(tvm.s_tir.__path__[0], "tensor_intrin")], name
    sys.modules[name] = package
    for module in CPU_INTRINSICS:
        importlib.import_module(f"{name}.{module}")


def _child(work_dir: str, trials: str, target: str, tracker: str = "") -> None:
    """Relax's static_shape_tuning pipeline up to its tuning step (so that `apply` finds the same
    workloads), then MetaSchedule in rounds of TRIALS_PER_ROUND candidates a task. Weights are
    marked layout-free, so schedules may repack them (a conv's weight tiled as its loops read it):
    MetaSchedule measured 12% faster kernels that way on Lite0's two heaviest tasks.
    `tracker`: measure on the board behind it (host:port:key), candidates cross-linked."""
    import tvm
    from tvm import relax

    cpu_intrinsics_only()
    from tvm.s_tir import meta_schedule as ms

    from edgeopt.tvm import tracker as rpc

    module = tvm.ir.load_json(Path(work_dir, "module.json").read_text())
    spec = json.loads(target)
    with tvm.target.Target(spec) as tuning_target:
        prepared = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(),
                                             relax.transform.CanonicalizeBindings(),
                                             relax.get_pipeline("zero"),
                                             relax.transform.AttachAttrLayoutFreeBuffers()])(module)
        ms.relax_integration.tune_relax(prepared, params={}, target=spec, work_dir=work_dir,
                                        max_trials_global=int(trials), num_trials_per_iter=TRIALS_PER_ROUND,
                                        builder=in_process_builder(Path(work_dir, CANDIDATES), _linker(tuning_target)),
                                        runner=rpc.runner(rpc.parse(tracker)) if tracker else "local")


if __name__ == "__main__":
    _child(*sys.argv[1:5])
