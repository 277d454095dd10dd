"""The live terminal view of `orch run`: task states updating in place, log lines above.

Used only when stderr is a terminal; otherwise `orch run` prints plain log lines. It hears
about task state changes through an engine listener and draws at most a few times a second.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import run_support
from .logging import ConsoleFormatter, for_console, setup_logging
from .store import TaskRun

STYLES = {
    "COMPLETED": "green",
    "CACHED": "cyan",
    "FAILED": "red",
    "CRASHED": "bold red",
    "TIMED_OUT": "red",
    "CANCELLED": "yellow",
    "RUNNING": "blue",
    "RETRYING": "magenta",
    "PENDING": "dim",
}
SHOWN_TASKS = 12


class _LiveHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.setFormatter(ConsoleFormatter())
        self.addFilter(for_console)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = "red" if record.levelno >= logging.ERROR else ""
            self.console.print(Text(self.format(record), style=style), highlight=False)
        except Exception:
            self.handleError(record)


class LiveRunView:
    """A context manager: while open, `orch run` output goes through this view."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.tasks: dict[tuple[str, int], TaskRun] = {}
        self.live = Live(console=self.console, refresh_per_second=8, transient=True)
        self.live.get_renderable = self._render  # type: ignore[method-assign]
        self.handler = _LiveHandler(self.console)

    def __enter__(self) -> LiveRunView:
        setup_logging(console=False)
        logging.getLogger("orchlite").addHandler(self.handler)
        run_level = logging.getLogger("orchlite").level  # ORCH_LOGGING_LEVEL
        logging.getLogger("orchlite.engine").setLevel(max(logging.INFO, run_level))
        run_support.add_listener(self._on_event)
        self.live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run_support.remove_listener(self._on_event)
        self.live.stop()
        logging.getLogger("orchlite").removeHandler(self.handler)

    def _on_event(self, kind: str, record: Any) -> None:
        if kind == "task":
            self.tasks[(record.flow_run_id, record.position)] = record

    def _render(self) -> Group:
        runs = list(self.tasks.values())
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.state] = counts.get(run.state, 0) + 1
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        now = time.time()
        for run in runs[-SHOWN_TASKS:]:
            started = run.started or run.created
            took = (run.ended or now) - started
            table.add_row(
                Text(f"  {run.name}"),
                Text(run.state, style=STYLES.get(run.state, "")),
                Text(f"{took:.1f}s", style="dim"),
            )
        summary = "  ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
        return Group(table, Text(f"  tasks: {summary or 'none yet'}", style="bold"))
