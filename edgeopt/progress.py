"""Progress lines for long steps, on stderr so that stdout stays clean for --json."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False, soft_wrap=True)


class Progress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def note(self, text: str, style: str = "") -> None:
        if not self.quiet:
            console.print(text, style=style)

    def warn(self, text: str) -> None:
        console.print(f"warning: {escape(text)}", style="bold yellow")

    @contextmanager
    def step(self, text: str):
        start = time.perf_counter()
        if not self.quiet:
            console.print(f"[dim]…[/] {escape(text)}")
        yield
        self.note(f"[green]✓[/] {escape(text)} [dim]({time.perf_counter() - start:.1f} s)[/]")
