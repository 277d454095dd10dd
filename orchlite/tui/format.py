"""How runs look in the TUI: state badges, task counts, times and durations as rich Text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from ..views import format_duration

STATE_STYLES: dict[str, str] = {
    "COMPLETED": "bold white on dark_green",
    "CACHED": "bold black on cyan",
    "FAILED": "bold white on red",
    "CRASHED": "bold white on dark_red",
    "TIMED_OUT": "bold white on red3",
    "CANCELLED": "bold black on yellow",
    "CANCELLING": "bold black on yellow",
    "RUNNING": "bold white on blue",
    "RETRYING": "bold white on magenta",
    "PENDING": "bold black on grey70",
    "SCHEDULED": "bold black on grey70",
    "LATE": "bold black on dark_orange",
    "SKIPPED": "bold black on grey50",
}
"""A background per state, for badges."""

STATE_COLOURS: dict[str, str] = {
    "COMPLETED": "green",
    "CACHED": "cyan",
    "FAILED": "red",
    "CRASHED": "bright_red",
    "TIMED_OUT": "red",
    "CANCELLED": "yellow",
    "CANCELLING": "yellow",
    "RUNNING": "blue",
    "RETRYING": "magenta",
    "LATE": "dark_orange",
}
"""A foreground per state, for counts and timeline bars."""

_SHORT = {
    "COMPLETED": "ok",
    "CACHED": "cached",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "TIMED_OUT": "timeout",
    "CANCELLED": "cancelled",
    "CANCELLING": "cancelling",
    "RUNNING": "running",
    "RETRYING": "retrying",
    "PENDING": "pending",
    "SCHEDULED": "scheduled",
    "LATE": "late",
    "SKIPPED": "skipped",
}

LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
LEVEL_STYLES = {10: "dim", 20: "", 30: "yellow", 40: "red", 50: "bold red"}


def badge(state: str) -> Text:
    """The state as a coloured badge: ` FAILED `."""
    return Text(f" {state} ", style=STATE_STYLES.get(state, "reverse"))


def coloured(state: str, text: str | None = None) -> Text:
    return Text(text if text is not None else state, style=STATE_COLOURS.get(state, ""))


def task_counts(counts: dict[str, int]) -> Text:
    """`3 ok 1 failed`, each count in its state's colour."""
    text = Text()
    for state, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if text:
            text.append(" ")
        text.append(f"{n} {_SHORT.get(state, state.lower())}", STATE_COLOURS.get(state, ""))
    return text if text else Text("-", style="dim")


def run_count(n: int) -> str:
    """`1 run`, `1,200 runs`."""
    return f"{n:,} run" + ("" if n == 1 else "s")


def clock_time(ts: float | None, now: float) -> str:
    """`14:03:07` today, `11-19 14:03` on another day, `-` when not started."""
    if ts is None:
        return "-"
    when = datetime.fromtimestamp(ts)
    if when.date() == datetime.fromtimestamp(now).date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%m-%d %H:%M")


def run_duration(started: float | None, ended: float | None, now: float) -> str:
    """The run's duration; a run still going counts up to `now`."""
    if started is None:
        return "-"
    return format_duration(max(0.0, (ended if ended is not None else now) - started))


def parameters_text(params: dict[str, Any]) -> str:
    """Parameters as a confirmation names them: `day='2026-03-01', n=7`."""
    return ", ".join(f"{name}={value!r}" for name, value in params.items()) or "defaults"
