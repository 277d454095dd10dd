"""A Gantt-like timeline of a run's task runs: one bar per task on a shared time axis."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from ..store import TaskRun
from ..views import format_duration, printable
from .format import STATE_COLOURS

NAME_WIDTH = 18
TAIL_WIDTH = 8


class Timeline:
    """Renders to the width it is given; a task still running extends to `now`."""

    def __init__(self, tasks: Sequence[TaskRun], now: float) -> None:
        self.tasks = list(tasks)
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        started = [t.started for t in self.tasks if t.started is not None]
        if not started:
            yield Text("no task has started yet", style="dim")
            return
        origin = min(started)
        end = max((t.ended if t.ended is not None else self.now) for t in self.tasks if t.started)
        span = max(end - origin, 1e-6)
        width = max(options.max_width - NAME_WIDTH - TAIL_WIDTH - 2, 10)
        yield Text(f"{'':<{NAME_WIDTH}} 0{format_duration(span):>{width}}", style="dim")
        for task in self.tasks:
            line = Text(f"{printable(task.name)[: NAME_WIDTH - 1]:<{NAME_WIDTH}} ")
            if task.started is None:
                line.append("·" * width, style="dim")
                line.append(f" {'-':>{TAIL_WIDTH}}")
                yield line
                continue
            stop = task.ended if task.ended is not None else self.now
            first = int((task.started - origin) / span * (width - 1))
            last = max(first, int((stop - origin) / span * (width - 1)))
            line.append(" " * first)
            line.append("█" * (last - first + 1), style=STATE_COLOURS.get(task.state, "white"))
            line.append(" " * (width - last - 1))
            line.append(f" {format_duration(stop - task.started):>{TAIL_WIDTH}}")
            yield line
