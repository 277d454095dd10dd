"""Schedules: when a flow fires, and which missed slots to catch up.

This module defines schedules and their rules; `orchlite.schedule_slots` computes their slots
(`next_fire_times`, `slots_between`, `due_slots`, `is_late`, `jitter_delay`) and
`orchlite.schedule_runs` the id and parameters of a slot's run (`schedule_key`, `slot_id`,
`run_parameters`). All are pure functions of their arguments: every function that depends on
the clock takes `now` (or `after`, `start`, `end`) from the caller; nothing sleeps, reads
files or looks at the system clock. Only `orchlite.cron_expressions` imports croniter
(lazily: constructing a `Cron` loads it, `import orchlite` does not).

    Cron("0 3 * * *", timezone="Europe/Berlin")     # or cron("0 3 * * *", timezone=...)
    Interval(timedelta(minutes=15))                  # or interval(minutes=15)

Slots. A *slot* is an instant a schedule fires at. Every function returns slots as aware UTC
datetimes, sorted, without duplicates.

Cron slots and daylight saving time. A cron expression names wall-clock times in the
schedule's time zone (5 fields, or an alias such as `@daily`). Each matching wall-clock time
fires exactly once:

- *Skipped* (spring forward): a wall time that does not exist that day fires once, at the
  first valid instant after it, which is the instant of the transition. "30 2 * * *" in
  Europe/Berlin on 2026-03-29 fires at 03:00 CEST (01:00 UTC). Several skipped slots that
  land on that instant, and a regular slot at the same instant, fire once together: "*/15"
  fires at 01:45 CET then 03:00 CEST, not four times at 03:00.
- *Repeated* (fall back): a wall time that occurs twice fires once, at its first occurrence.
  "30 2 * * *" in Europe/Berlin on 2026-10-25 fires at 02:30 CEST (00:30 UTC), not again at
  02:30 CET. So an hourly cron does not fire during the second pass of the repeated hour:
  every wall-clock hour fires once, and the elapsed time between two fires can be two hours.
  Use an `Interval` for "every N elapsed minutes".

`orchlite.cron_expressions` reads and checks expressions and lists croniter's naive
wall-clock matches; `orchlite.timezones` maps each match to an instant by this rule.

Interval slots are absolute: `anchor + k * interval` for every integer k (before the anchor
too; the anchor only sets the phase), in elapsed time, unaffected by DST. The default anchor
is the Unix epoch, 1970-01-01T00:00:00Z, so `interval(hours=1)` fires on the hour in UTC and
`interval(days=1)` at 00:00 UTC. A naive `anchor` is read in the schedule's time zone.

Catch-up. The daemon remembers, per schedule, the newest slot it has handled (`last_fired`)
and calls `due_slots(schedule, last_fired, now)` on each tick. The slots in
`(last_fired, now]` are the missed ones; the schedule's `catchup` policy picks which to start:

    "none"    only slots still within their grace period (`now <= slot + grace_seconds`)
    "latest"  only the most recent missed slot (the default)
    "all"     every missed slot

Each answer holds at most `max_catchup` slots, the most recent ones, so a long outage never
starts a storm of runs. A new schedule (`last_fired=None`) has nothing due: the caller
records `now` as its `last_fired`, and the first slot after that fires. A disabled
schedule has nothing due.

Run ids. `slot_id(schedule_key(target, schedule), slot)` is a persisted contract: the sha256
of `f"{key}|{slot in UTC, isoformat()}"`, first 32 hex digits. The same slot of the same
schedule gets the same id in every process, so a slot is claimed once across restarts and
daemons. `schedule_key` is `f"{target}|{16 hex digits}"`: the sha256 of the compact
sorted-key JSON of the definition (kind; the five cron fields, aliases expanded, time zone
and day_or; or the interval in microseconds, the anchor in UTC and the time zone; then name
and parameters, with dates and times as ISO strings, paths, decimals and uuids as `str()`).
It leaves out the policy (catchup, max_catchup, grace_seconds, enabled, jitter_seconds) and
how runs start (working_dir, env), so tuning those keeps the key and its `last_fired`.
Changing these forms re-keys every schedule.

Jitter. With `jitter_seconds`, the run of a slot starts `jitter_delay(schedule, run_id)`
seconds after the slot, a delay in `[0, jitter_seconds]` (systemd's RandomizedDelaySec). The
slot, its run id and `{scheduled_time}` stay the slot's own time; only the start moves. The
delay is drawn from the run id's digits rather than a random generator, so it is spread
evenly over slots yet the same in every process: a daemon restarted during the delay starts
the run when the first one would have.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeGuard

from .cron_expressions import check_cron
from .errors import UsageError
from .shell_jobs import RunOptions, entry_env
from .timezones import EPOCH, ONE_US, UTC, resolve_wall, zone_of

__all__ = [
    "CATCHUP_POLICIES",
    "Catchup",
    "Cron",
    "Interval",
    "Schedule",
    "cron",
    "describe",
    "interval",
]


Catchup = Literal["none", "latest", "all"]
CATCHUP_POLICIES: tuple[str, ...] = ("none", "latest", "all")
"""The values of `catchup`, from the fewest runs to the most."""


# -- definitions ---------------------------------------------------------------------------


MAX_JITTER_SECONDS = 365 * 86400.0


@dataclass(frozen=True, kw_only=True)
class _Policy:
    """What every schedule has besides its timing (keyword-only fields)."""

    catchup: Catchup = "latest"
    """Which slots missed while the daemon was down to start: see the module docstring."""
    max_catchup: int = 10
    """The most slots one `due_slots` answer holds (the most recent ones)."""
    grace_seconds: float = 60.0
    """A run that starts later than slot + grace_seconds is late."""
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)
    """Flow parameters for each run; string values may use `{scheduled_time:%Y-%m-%d}`."""
    enabled: bool = True
    name: str | None = None
    jitter_seconds: float = 0.0
    """Each slot's run starts at a delay in `[0, jitter_seconds]` after the slot (as
    systemd's RandomizedDelaySec): see `jitter_delay`."""
    working_dir: str | None = None
    """The folder its runs start in, as an orch.toml entry's `working_dir` (an orchlite
    extension): relative to the project root; None: the root."""
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Variables added to its runs' environment, as an orch.toml entry's `env` (an orchlite
    extension); never recorded."""

    def run_options(self) -> RunOptions:
        """How its runs start: its `working_dir` and `env`, as an orch.toml entry's."""
        return RunOptions(working_dir=self.working_dir, env=entry_env(self.env))

    def _check_policy(self) -> None:
        if self.catchup not in CATCHUP_POLICIES:
            raise UsageError(
                f"invalid catchup {self.catchup!r}: expected one of {', '.join(CATCHUP_POLICIES)}"
            )
        if not is_int(self.max_catchup) or self.max_catchup < 1:
            raise UsageError(f"invalid max_catchup {self.max_catchup!r}: expected an int >= 1")
        grace = self.grace_seconds
        if not _is_number(grace) or not math.isfinite(grace) or grace < 0:
            raise UsageError(f"invalid grace_seconds {grace!r}: expected a number >= 0")
        if not isinstance(self.parameters, Mapping) or not all(
            isinstance(k, str) for k in self.parameters
        ):
            raise UsageError("schedule parameters must be a dict with str keys")
        object.__setattr__(self, "parameters", dict(self.parameters))
        if not isinstance(self.enabled, bool):
            raise UsageError(f"invalid enabled {self.enabled!r}: expected True or False")
        if self.name is not None and not isinstance(self.name, str):
            raise UsageError(f"invalid schedule name {self.name!r}: expected a string")
        jitter = self.jitter_seconds
        if not _is_number(jitter) or not 0 <= jitter <= MAX_JITTER_SECONDS:
            raise UsageError(
                f"invalid jitter_seconds {jitter!r}: expected a number >= 0 (at most a year)"
            )
        folder = self.working_dir
        if folder is not None and (not isinstance(folder, str) or not folder.strip()):
            raise UsageError(f"invalid working_dir {folder!r}: expected a folder")
        if not isinstance(self.env, Mapping):
            raise UsageError('env must be a dict: env={"KEY": "value"}')
        object.__setattr__(self, "env", dict(self.env))
        entry_env(self.env)  # UsageError naming a bad name or value


@dataclass(frozen=True)
class Cron(_Policy):
    """Fire at the wall-clock times a cron expression names, in `timezone`."""

    expression: str
    timezone: str = "UTC"
    day_or: bool = True
    """True: a day matches day-of-month OR day-of-week (cron's rule); False: both."""

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise UsageError(f"invalid cron expression {self.expression!r}: expected a string")
        object.__setattr__(self, "expression", " ".join(self.expression.split()))
        zone_of(self.timezone)
        check_cron(self.expression, self.day_or)
        self._check_policy()


MIN_INTERVAL = dt.timedelta(seconds=1)
"""Shorter intervals are refused: each slot is a flow run, and a daemon cannot start runs
(or record skipped ones) faster than that without flooding the store."""


@dataclass(frozen=True)
class Interval(_Policy):
    """Fire every `interval` of elapsed time, at `anchor + k * interval`."""

    interval: dt.timedelta
    """A timedelta, or a number of seconds (stored as a timedelta)."""
    anchor: dt.datetime | None = None
    """An instant on the grid (default: the Unix epoch); naive means in `timezone`."""
    timezone: str = "UTC"
    """Reads a naive anchor, and formats `{scheduled_time}` in parameters."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", _as_interval(self.interval))
        zone = zone_of(self.timezone)
        anchor = self.anchor
        if anchor is not None:
            if not isinstance(anchor, dt.datetime):
                raise UsageError(f"invalid anchor {anchor!r}: expected a datetime")
            if anchor.tzinfo is None:
                anchor = resolve_wall(anchor, zone).astimezone(zone)
            object.__setattr__(self, "anchor", anchor)
        self._check_policy()

    def grid(self) -> tuple[int, dt.datetime]:
        """The grid of its slots: the step in microseconds, and an instant on it (UTC)."""
        anchor = EPOCH if self.anchor is None else self.anchor.astimezone(UTC)
        return self.interval // ONE_US, anchor


Schedule: TypeAlias = Cron | Interval


def cron(
    expression: str,
    timezone: str = "UTC",
    day_or: bool = True,
    *,
    catchup: Catchup = "latest",
    max_catchup: int = 10,
    grace_seconds: float = 60.0,
    parameters: Mapping[str, Any] | None = None,
    enabled: bool = True,
    name: str | None = None,
    jitter_seconds: float = 0.0,
    working_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Cron:
    """A cron schedule, as `prefect.schedules.Cron`: `cron("0 3 * * *", "Europe/Berlin")`.

    `working_dir=` and `env=` are orchlite's own, as an orch.toml entry's (see `_Policy`)."""
    return Cron(
        expression,
        timezone,
        day_or,
        catchup=catchup,
        max_catchup=max_catchup,
        grace_seconds=grace_seconds,
        parameters=dict(parameters or {}),
        enabled=enabled,
        name=name,
        jitter_seconds=jitter_seconds,
        working_dir=working_dir,
        env={} if env is None else env,
    )


def _as_interval(every: object) -> dt.timedelta:
    """A positive timedelta from a timedelta or a number of seconds (else UsageError)."""
    span = every
    if _is_number(span) and math.isfinite(span):
        try:
            span = dt.timedelta(seconds=span)
        except OverflowError:
            raise UsageError(f"invalid interval {every!r}: too large") from None
    if not isinstance(span, dt.timedelta):
        raise UsageError(f"invalid interval {every!r}: expected seconds or a timedelta")
    if span <= dt.timedelta(0):
        raise UsageError(f"invalid interval {_format_span(span)}: it must be positive")
    if span < MIN_INTERVAL:
        raise UsageError(
            f"invalid interval {_format_span(span)}: the shortest is 1s (each slot is a run)"
        )
    return span


def interval(
    every: float | dt.timedelta | None = None,
    *,
    seconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
    anchor_date: dt.datetime | None = None,
    timezone: str = "UTC",
    catchup: Catchup = "latest",
    max_catchup: int = 10,
    grace_seconds: float = 60.0,
    parameters: Mapping[str, Any] | None = None,
    enabled: bool = True,
    name: str | None = None,
    jitter_seconds: float = 0.0,
    working_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Interval:
    """An interval schedule: `interval(minutes=15)`, `interval(3600)`, `interval(timedelta())`;
    `working_dir=` and `env=` as for `cron`."""
    units = (seconds, minutes, hours, days)
    if not all(_is_number(u) for u in units):
        raise UsageError("interval units (seconds=, minutes=, hours=, days=) must be numbers")
    if every is not None and any(units):
        raise UsageError("give the interval either positionally or as units, not both")
    if every is None:
        every = dt.timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
    return Interval(
        _as_interval(every),
        anchor_date,
        timezone,
        catchup=catchup,
        max_catchup=max_catchup,
        grace_seconds=grace_seconds,
        parameters=dict(parameters or {}),
        enabled=enabled,
        name=name,
        jitter_seconds=jitter_seconds,
        working_dir=working_dir,
        env={} if env is None else env,
    )


# -- listings ------------------------------------------------------------------------------


def describe(schedule: Schedule) -> str:
    """One line for listings: "cron 0 3 * * * (Europe/Berlin)", "every 15m"."""
    if isinstance(schedule, Cron):
        extra = "" if schedule.day_or else ", day-of-month and day-of-week"
        return f"cron {schedule.expression} ({schedule.timezone}{extra})"
    text = f"every {_format_span(schedule.interval)}"
    if schedule.anchor is not None:
        text += f" from {schedule.anchor.isoformat()}"
    return text


def _format_span(span: dt.timedelta) -> str:
    if span < dt.timedelta(0):
        return "-" + _format_span(-span)
    parts = []
    if span.days:
        parts.append(f"{span.days}d")
    hours, rest = divmod(span.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if span.microseconds:
        parts.append(f"{seconds + span.microseconds / 1e6:g}s")
    elif seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


# -- validation ----------------------------------------------------------------------------


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
