"""A Gantt-like timeline of a run's task runs: one bar per task on a shared time axis.

Only the lines in view are drawn (Textual's line API), so a run of thousands of task runs
costs what a screenful does, on every poll and every tick alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from rich.cells import set_cell_size
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from ..views import format_duration, printable
from .format import STATE_COLOURS

RETRIED = "magenta"
"""The colour of the attempts before a task run's last one."""


class Span(Protocol):
    """A task run or a subflow's flow run: what a line of the timeline shows."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def started(self) -> float | None: ...
    @property
    def ended(self) -> float | None: ...


NAME_WIDTH = 18
TAIL_WIDTH = 8
MIN_BAR_WIDTH = 10


class Timeline(Widget):
    """A task still running extends to `now`; the bars are as wide as the widget allows."""

    DEFAULT_CSS = "Timeline { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tasks: list[Span] = []
        self.retried: Mapping[str, float] = {}
        self.now = 0.0
        self.origin: float | None = None
        """When the first task run started (None: none has)."""
        self.span = 0.0

    def show(
        self, tasks: Sequence[Span], now: float, retried: Mapping[str, float] | None = None
    ) -> None:
        """Draw these task runs and subflows (in this order) as of `now`; `retried`: when
        the last attempt of each one retried started (the earlier ones are drawn apart)."""
        grew = len(tasks) != len(self.tasks)
        self.tasks = list(tasks)
        self.retried = retried or {}
        self.now = now
        started = [t.started for t in self.tasks if t.started is not None]
        self.origin = min(started) if started else None
        if self.origin is not None:
            end = max(_stop(t, now) for t in self.tasks if t.started is not None)
            self.span = max(end - self.origin, 0.0)
        self.refresh(layout=grew)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1 if self.origin is None else len(self.tasks) + 1

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        text = self.line(y, width)
        text.stylize_before(self.rich_style)
        strip = Strip(list(text.render(self.app.console)), text.cell_len)
        return strip.crop_extend(0, width, self.rich_style)

    def line(self, y: int, width: int) -> Text:
        """Line `y` at `width` cells: the time axis, then a bar per task run."""
        if self.origin is None:
            return Text("no task has started yet", style="dim") if y == 0 else Text()
        bar = max(width - NAME_WIDTH - TAIL_WIDTH - 2, MIN_BAR_WIDTH)
        if y == 0:
            return Text(f"{'':<{NAME_WIDTH}} 0{format_duration(self.span):>{bar}}", style="dim")
        if y > len(self.tasks):
            return Text()
        task = self.tasks[y - 1]
        line = Text(set_cell_size(printable(task.name), NAME_WIDTH - 1) + "  ")
        if task.started is None:
            line.append("·" * bar, style="dim")
            line.append(f" {'-':>{TAIL_WIDTH}}")
            return line
        stop = _stop(task, self.now)
        first, last = _cells(task.started - self.origin, stop - self.origin, self.span, bar)
        retry = self.retried.get(task.id)
        split = first if retry is None else _cells(retry - self.origin, 0, self.span, bar)[0]
        split = min(max(split, first), last)
        line.append(" " * first)
        line.append("█" * (split - first), style=RETRIED)
        line.append("█" * (last - split + 1), style=STATE_COLOURS.get(task.state, "white"))
        line.append(" " * (bar - last - 1))
        line.append(f" {format_duration(max(stop - task.started, 0.0)):>{TAIL_WIDTH}}")
        return line


def _stop(task: Span, now: float) -> float:
    return task.ended if task.ended is not None else now


def _cells(start: float, stop: float, span: float, bar: int) -> tuple[int, int]:
    """The first and last cell of a bar from `start` to `stop` seconds after the origin, on
    an axis of `span` seconds drawn in `bar` cells. A run whose task runs all took no time
    has no axis: each is drawn as one cell at the start."""
    if span <= 0:
        return 0, 0
    scale = (bar - 1) / span
    first = min(int(start * scale), bar - 1)
    return first, min(max(first, int(stop * scale)), bar - 1)
