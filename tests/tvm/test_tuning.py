"""arm-cpu tuning: a few MetaSchedule trials on this host fill the cache; the next build of the
same model applies them without tuning, and the tuned aarch64 library still matches under qemu."""

from __future__ import annotations

import time

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.smoke import smoke


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
