"""The trends strip of the runs screen: per flow, its last runs' outcomes and durations.

One line per flow, the flow that ran last first:
`etl   ■■■■■■□■■■  ▂▃▂▂█▂▁▂▂▃  9/10 ok  last 1.2s`: a block per run coloured by its state
and a sparkline of the durations, oldest to newest, on the same scale for one flow.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

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
    """Renders to the width it is given, dropping the oldest runs when it is narrow."""

    def __init__(self, flows: Sequence[Sequence[FlowRun]], now: float) -> None:
        self.flows = [list(runs) for runs in flows if runs]
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        longest = max((len(runs) for runs in self.flows), default=0)
        slots = max(1, min(longest, (options.max_width - NAME_WIDTH - SUMMARY_WIDTH - 4) // 2))
        for runs in self.flows:
            yield self._line(list(reversed(runs[:slots])), slots)  # oldest first

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
