"""Flow health: per flow, over a window of time, how many runs, how many failed, how long
they took (median and 95th percentile, against the window before), how many started late
and how many slots were skipped, and the last failure's message.

Pure functions of the rows `Store.health_runs` reads; `now` is a parameter, so the numbers
of a given store and moment are always the same. What is counted:

- runs: the runs created in the window, skipped slots left out;
- failure rate: FAILED, CRASHED and TIMED_OUT runs over the runs that finished;
- durations: from start to end of the runs that completed or failed (not of cancelled,
  skipped or unfinished ones); the trend is the change against the previous window of the
  same length (None unless each window has `TREND_RUNS` durations at least);
- late: runs a schedule started more than `late_after` seconds after their slot was due
  (or still waiting that long); skipped: slots the overlap policy skipped (state SKIPPED).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .states import StateName
from .store import HealthRun
from .store.health import FAILED_STATES
from .views import format_duration, iso

WINDOWS: dict[str, float] = {"24h": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0}
"""The windows offered, by name, in seconds."""
WINDOW_LABELS = {"24h": "24 hours", "7d": "7 days", "30d": "30 days"}
LATE_AFTER = 60.0
"""Seconds past its slot after which a scheduled run counts as late (a schedule's default
grace period, `grace_seconds`)."""

TREND_RUNS = 3
"""Durations a window needs, and the window before too, for a trend (one run is no trend)."""

_FAILED = frozenset(FAILED_STATES)
_TIMED = _FAILED | {StateName.COMPLETED.value, StateName.CACHED.value}
_WAITING = frozenset({StateName.SCHEDULED.value, StateName.LATE.value})
_FINISHED = (
    frozenset(s.value for s in (StateName.COMPLETED, StateName.CACHED, StateName.CANCELLED))
    | _FAILED
)


def window_seconds(name: str) -> float:
    """The length of the window called `name` (`24h`, `7d` or `30d`)."""
    try:
        return WINDOWS[name]
    except KeyError:
        raise UsageError(f"unknown window {name!r}: use one of {', '.join(WINDOWS)}") from None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`th percentile (0-100) of `values`, interpolated between the nearest ranks;
    None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


STEADY = 0.005
"""A change smaller than this (half a percent) is shown as none."""


def change_label(change: float | None) -> str:
    """`↑12%` (more), `↓8%` (less), `=` (within half a percent), or `` (nothing to
    compare with)."""
    if change is None:
        return ""
    if abs(change) < STEADY:
        return "="
    shown = f"{abs(change):.0%}" if abs(change) < 10 else ">999%"
    return f"↑{shown}" if change > 0 else f"↓{shown}"


def duration_label(seconds: float | None, change: float | None) -> str:
    """`4.0s ↑100%`: a duration and its change."""
    return f"{format_duration(seconds)} {change_label(change)}".rstrip()


def rate_label(health: FlowHealth) -> str:
    """`20%` of the finished runs failed; `-` when none finished."""
    rate = health.failure_rate
    return "-" if rate is None else f"{rate:.0%}"


def failure_label(health: FlowHealth) -> str:
    """The first line of the last failure's message (`(no message)` if it had none)."""
    message = (health.last_failure or "").strip()
    if not message:
        return "(no message)" if health.failed else ""
    return message.splitlines()[0]


def change(current: float | None, previous: float | None) -> float | None:
    """The relative change from `previous` to `current` (0.25: a quarter more); None when
    either is missing or `previous` is not positive."""
    if current is None or previous is None or previous <= 0:
        return None
    return (current - previous) / previous


@dataclass
class FlowHealth:
    """One flow's numbers over one window."""

    flow: str
    runs: int = 0
    finished: int = 0
    failed: int = 0
    late: int = 0
    skipped: int = 0
    p50: float | None = None
    p95: float | None = None
    p50_change: float | None = None
    p95_change: float | None = None
    last_failure: str | None = None
    """The message of the newest failed run in the window (None: none failed, or no message)."""
    last_failure_at: float | None = None
    durations: list[float] = field(default_factory=list, repr=False)

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


def flow_health(
    runs: Iterable[HealthRun], *, now: float, window: float, late_after: float = LATE_AFTER
) -> list[FlowHealth]:
    """Per flow, by name, the health over `[now - window, now]` of the `runs` (those created
    since `now - 2 * window`: the window before gives the durations' trends). A flow that ran
    only in the window before is listed too, with no runs."""
    start = now - window
    current: dict[str, FlowHealth] = {}
    before: dict[str, list[float]] = {}
    for run in runs:
        if run.created < start - window or run.created > now:
            continue
        took = _duration(run)
        if run.created < start:
            if took is not None:
                before.setdefault(run.flow_name, []).append(took)
            continue
        health = current.setdefault(run.flow_name, FlowHealth(run.flow_name))
        _count(health, run, took, now, late_after)
    for flow in before.keys() - current.keys():
        current[flow] = FlowHealth(flow)
    for flow, health in current.items():
        health.p50 = percentile(health.durations, 50)
        health.p95 = percentile(health.durations, 95)
        earlier = before.get(flow, [])
        if min(len(earlier), len(health.durations)) >= TREND_RUNS:
            health.p50_change = change(health.p50, percentile(earlier, 50))
            health.p95_change = change(health.p95, percentile(earlier, 95))
    return [current[flow] for flow in sorted(current)]


def _duration(run: HealthRun) -> float | None:
    if run.state not in _TIMED or run.started is None or run.ended is None:
        return None
    return max(0.0, run.ended - run.started)


def _count(health: FlowHealth, run: HealthRun, took: float | None, now: float, late: float) -> None:
    if run.state == StateName.SKIPPED.value:
        health.skipped += 1
        return
    health.runs += 1
    if took is not None:
        health.durations.append(took)
    if run.state in _FINISHED:
        health.finished += 1
    if run.state in _FAILED:
        health.failed += 1
        at = run.ended if run.ended is not None else run.created
        if health.last_failure_at is None or at >= health.last_failure_at:
            health.last_failure_at = at
            health.last_failure = run.message
    if run.slot is not None:
        began = run.started if run.started is not None else (now if run.state in _WAITING else None)
        if began is not None and began - run.slot > late:
            health.late += 1


def health_view(
    flows: Sequence[FlowHealth], *, window: str, now: float, late_after: float = LATE_AFTER
) -> dict[str, Any]:
    """The health of `flows` as `orch flows --health --json` prints it."""

    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "window": window,
        "since": iso(now - WINDOWS[window]),
        "until": iso(now),
        "late_after": late_after,
        "flows": [
            {
                "flow": h.flow,
                "runs": h.runs,
                "finished": h.finished,
                "failed": h.failed,
                "failure_rate": rounded(h.failure_rate, 4),
                "p50": rounded(h.p50, 6),
                "p95": rounded(h.p95, 6),
                "p50_change": rounded(h.p50_change, 4),
                "p95_change": rounded(h.p95_change, 4),
                "late": h.late,
                "skipped": h.skipped,
                "last_failure": h.last_failure,
                "last_failure_at": iso(h.last_failure_at),
            }
            for h in flows
        ],
    }
