"""Progress lines for long steps, on stderr so that stdout stays clean for --json, and what
each step cost: wall seconds and peak resident memory (issue 11: a build must show where
its time and memory go, so that a blow-up is seen and named, not guessed)."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False, soft_wrap=True)
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
_child_peaks: list[float] = []  # MB, per child run reported by record_child_peak (the TFLite converter)


@dataclass
class StageCost:
    stage: str
    seconds: float
    peak_rss_mb: float  # this process's peak during the stage (its lifetime peak where it cannot be reset)
    child_peak_rss_mb: float | None = None  # the largest converter child run during the stage

    def to_json(self) -> dict:
        return asdict(self)


def _status_kb(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> None:
    """Start a new peak (VmHWM) for this process; Linux only, a no-op elsewhere."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last reset_peak_rss (else its lifetime)."""
    kb = _status_kb("VmHWM")
    if kb is None:  # no /proc: ru_maxrss is kB on Linux, bytes on macOS; a lifetime figure either way
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def record_child_peak(mb: float) -> None:
    """A helper process's peak RSS, for the step it ran in (the converter runs in a fork
    server's child, which this process's RUSAGE_CHILDREN does not see)."""
    _child_peaks.append(round(mb, 1))


class Progress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.stages: list[StageCost] = []
        self.warnings: list[str] = []  # also in manifest.json, for a CI job that reads only that

    def note(self, text: str, style: str = "") -> None:
        if not self.quiet:
            console.print(text, style=style)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        console.print(f"warning: {escape(text)}", style="bold yellow")

    @contextmanager
    def step(self, text: str, stage: str | None = None):
        """Announce a step, then record its seconds and peak RSS under `stage` (default: the text)."""
        if not self.quiet:
            console.print(f"[dim]…[/] {escape(text)}")
        reset_peak_rss()
        children_before = len(_child_peaks)
        start = time.perf_counter()
        yield
        child = max(_child_peaks[children_before:], default=None)
        cost = StageCost(stage or text, round(time.perf_counter() - start, 3), peak_rss_mb(), child)
        self.stages.append(cost)
        peak = max(cost.peak_rss_mb, child or 0)
        self.note(f"[green]✓[/] {escape(text)} [dim]({cost.seconds:.1f} s, peak {peak:,.0f} MB)[/]")
