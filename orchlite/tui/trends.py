"""The trends strip of the runs screen: per flow, its last runs' outcomes and durations.

One line per flow, the flow that ran last first:
`etl   ■■■■■■□■■■  ▂▃▂▂█▂▁▂▂▃  9/10 ok  last 1.2s`: a block per run coloured by its state
and a sparkline of the durations, oldest to newest, on the same scale for one flow.

`TrendsStrip` draws each line once and again only when it changed: beside a daemon firing
every second, the line of its flow alone is redrawn each second, not the strip.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from ..store import FlowRun
from ..views import format_duration, printable
from .format import STATE_COLOURS

NAME_WIDTH = 14
SUMMARY_WIDTH = 20
"""Room kept for `9/10 ok  last 1.2s`."""
SPARKS = "▁▂▃▄▅▆▇█"
GOOD = frozenset({"COMPLETED", "CACHED"})


def sparkline(values: Sequence[float | None]) -> str:
    """A character per value, scaled to the largest; None (never started) is a blank."""
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return "".join(" " if v is None else SPARKS[0] for v in values)
    return "".join(" " if v is None else SPARKS[int(v / top * (len(SPARKS) - 1))] for v in values)


def _duration(run: FlowRun, now: float) -> float | None:
    if run.started is None:
        return None
    return max(0.0, (run.ended if run.ended is not None else now) - run.started)


class Trends:
    """The lines for a width, dropping the oldest runs when it is narrow (`keyed_lines`)."""

    def __init__(self, flows: Sequence[Sequence[FlowRun]], now: float) -> None:
        self.flows = [list(runs) for runs in flows if runs]
        self.now = now

    def keyed_lines(self, width: int, kept: Mapping[Hashable, Text]) -> dict[Hashable, Text]:
        """The lines in order, each by what it shows, taken from `kept` where it is there: a
        flow whose runs did not move keeps its line, not made again for another's new run."""
        longest = max((len(runs) for runs in self.flows), default=0)
        slots = max(1, min(longest, (width - NAME_WIDTH - SUMMARY_WIDTH - 4) // 2))
        lines: dict[Hashable, Text] = {}
        for runs in self.flows:
            shown = list(reversed(runs[:slots]))
            key = self._key(shown, slots)
            line = kept.get(key)
            lines[key] = self._line(shown, slots) if line is None else line
        return lines

    def _key(self, runs: list[FlowRun], slots: int) -> Hashable:
        """What a line shows: its runs' outcomes and times, and the time for a run going."""
        going = any(run.ended is None and run.started is not None for run in runs)
        marks = tuple((run.id, run.state, run.started, run.ended) for run in runs)
        return (slots, runs[-1].flow_name, marks, self.now if going else None)

    def _line(self, runs: list[FlowRun], slots: int) -> Text:
        newest = runs[-1]
        pad = " " * (slots - len(runs) + 2)
        name = printable(newest.flow_name)
        line = Text(f"{name[: NAME_WIDTH - 1]:<{NAME_WIDTH}}", style="bold")
        for run in runs:
            line.append("■", style=STATE_COLOURS.get(run.state, "dim"))
        line.append(pad)
        line.append(sparkline([_duration(r, self.now) for r in runs]), style="cyan")
        line.append(pad)
        ended = [r for r in runs if r.ended is not None]
        good = sum(r.state in GOOD for r in ended)
        line.append(
            f"{good}/{len(ended)} ok" if ended else "none ended",
            style="red" if good < len(ended) else "",
        )
        line.append(f"  last {format_duration(_duration(newest, self.now))}", style="dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line


class TrendsStrip(Widget):
    """The trends, a line per flow (see the module doc)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.trends = Trends([], 0.0)
        self.lines: list[Text] = []
        """The lines shown, for the content width."""
        self._strips: dict[int, Strip] = {}
        self._made: dict[Hashable, Text] = {}
        """The lines shown, by what they show (`Trends.keyed_lines`)."""

    def show(self, flows: Sequence[Sequence[FlowRun]], now: float) -> None:
        self.trends = Trends(flows, now)
        self._draw()

    def _draw(self) -> None:
        """Redraw the lines that changed (all of them when their number did)."""
        self._made = self.trends.keyed_lines(self.content_size.width, self._made)
        lines = list(self._made.values())
        if len(lines) != len(self.lines):
            self._strips.clear()
            self.refresh(layout=True)
        else:
            for y, (before, after) in enumerate(zip(self.lines, lines, strict=True)):
                if before is not after and before != after:
                    self._strips.pop(y, None)
                    self.refresh(Region(0, y, self.size.width, 1))
        self.lines = lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.trends.flows)

    def on_resize(self, event: events.Resize) -> None:
        self._strips.clear()
        self._draw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        strip = self._strips.get(y)
        if strip is None:
            if y >= len(self.lines):
                return Strip.blank(width, self.rich_style)
            text = self.lines[y].copy()
            text.truncate(width, overflow="ellipsis")
            segments = Segment.apply_style(text.render(self.app.console), self.rich_style)
            strip = Strip(list(segments)).extend_cell_length(width, self.rich_style)
            self._strips[y] = strip
        return strip
