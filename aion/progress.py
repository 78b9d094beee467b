"""Progress of long steps (downloads, builds, server starts) on the terminal."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.status import Status


def reporter(console: Console, status: Status) -> Callable[[str], None]:
    """Each step as a line on the console, and as the spinner's text."""

    def report(line: str) -> None:
        console.print(f"  {line}", highlight=False)
        status.update(line)

    return report
