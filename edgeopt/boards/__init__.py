"""Boards a bundle can be smoke-tested on, by name. Each runs the bundle's runner there
and hands back what it printed."""

from __future__ import annotations

from edgeopt.boards.local import LocalBoard
from edgeopt.boards.qemu import QemuBoard
from edgeopt.errors import UsageError

BOARDS = {"local": LocalBoard, "qemu-aarch64": QemuBoard}


def get_board(name: str):
    if name not in BOARDS:
        raise UsageError(f"unknown board {name!r}", hint=f"Boards: {', '.join(BOARDS)}")
    return BOARDS[name]()


__all__ = ["BOARDS", "get_board"]
