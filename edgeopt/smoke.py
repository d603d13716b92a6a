"""`edgeopt smoke`: run a bundle's runner on a board against its golden I/O."""

from __future__ import annotations

import json
from pathlib import Path

from edgeopt.boards import get_board
from edgeopt.bundle import opened, read_manifest
from edgeopt.errors import BoardError


def smoke(path: Path, board: str = "local", runs: int = 50, threads: int = 1, options: dict | None = None) -> dict:
    """`options`: the board's connection settings (ssh: identity, fingerprint; ssh and adb: timeout)."""
    target = get_board(board, **(options or {}))
    with opened(path) as directory:
        manifest = read_manifest(directory)
        runner = manifest["runner"]
        done = target.run(directory, runner, ["--json", "--runs", str(runs), "--threads", str(threads)])
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise BoardError(f"{path}: the runner failed on board {board} (exit {done.returncode}):\n{tail}",
                         hint="Check that the device has the runtime the bundle README names.") from None
    report.update(board=board, bundle=str(path), target=manifest["target"], profile=manifest["profile"])
    if not report["ok"]:
        bad = [f"{r['name']} (max abs error {r['max_abs_error']:.3g} > atol {r['atol']:.3g})"
               for r in report["outputs"] if not r["ok"]]
        raise BoardError(f"{path}: outputs differ from the golden outputs on board {board}: {', '.join(bad)}",
                         hint="The runtime on the board computes differently; compare runtime versions with the manifest.",
                         details=report)
    return report
