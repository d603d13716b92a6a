"""Boards a bundle can be smoke-tested on, by name. Each runs the bundle's runner there
and hands back what it printed."""

from __future__ import annotations

from edgeopt.boards.local import LocalBoard
from edgeopt.boards.qemu import QemuBoard
from edgeopt.errors import UsageError

BOARDS = {"local": LocalBoard, "qemu-aarch64": QemuBoard}


def get_board(name: str, identity: str | None = None, fingerprint: str | None = None, timeout: float = 600):
    """A board by name: one of BOARDS, ssh://user@host[:port], or adb[:serial]."""
    if name.startswith("ssh://"):
        from edgeopt.boards.ssh import SshBoard
        return SshBoard(name, identity, fingerprint, timeout)
    if identity or fingerprint:
        raise UsageError("--identity and --host-key-fingerprint are for ssh:// boards")
    if name == "adb" or name.startswith("adb:"):
        from edgeopt.boards.adb import AdbBoard
        return AdbBoard(name.partition(":")[2] or None, timeout)
    if name not in BOARDS:
        raise UsageError(f"unknown board {name!r}",
                         hint=f"Boards: {', '.join(BOARDS)}, ssh://user@host[:port], adb or adb:SERIAL")
    return BOARDS[name]()


__all__ = ["BOARDS", "get_board"]
