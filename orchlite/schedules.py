"""Schedules: when a flow fires, and which missed slots to catch up.

Pure functions of their arguments: every function that depends on the clock takes `now` (or
`after`, `start`, `end`) from the caller; nothing here sleeps, reads files or looks at the
system clock. This is also the only module that imports croniter (lazily: constructing a
`Cron` loads it, `import orchlite` does not).

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

This rule is ours, not croniter's: croniter only matches naive wall-clock times, and
`_resolve` maps each match to an instant, so the rule does not depend on croniter's version.
(Given aware datetimes, croniter 7 fires "30 2 * * *" twice on Berlin's fall-back day.)

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
It leaves out the policy (catchup, max_catchup, grace_seconds, enabled, jitter_seconds), so
tuning the policy keeps the key and its `last_fired`. Changing these forms re-keys every
schedule.

Jitter. With `jitter_seconds`, the run of a slot starts `jitter_delay(schedule, run_id)`
seconds after the slot, a delay in `[0, jitter_seconds]` (systemd's RandomizedDelaySec). The
slot, its run id and `{scheduled_time}` stay the slot's own time; only the start moves. The
delay is drawn from the run id's digits rather than a random generator, so it is spread
evenly over slots yet the same in every process: a daemon restarted during the delay starts
the run when the first one would have.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import re
import string
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePath
from typing import Any, Literal, TypeAlias, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UsageError

__all__ = [
    "CATCHUP_POLICIES",
    "Catchup",
    "Cron",
    "Interval",
    "Schedule",
    "cron",
    "describe",
    "due_slots",
    "interval",
    "is_late",
    "jitter_delay",
    "next_fire_times",
    "render_parameters",
    "run_parameters",
    "schedule_key",
    "slot_id",
    "slots_between",
]

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_US = dt.timedelta(microseconds=1)

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

    def _check_policy(self) -> None:
        if self.catchup not in CATCHUP_POLICIES:
            raise UsageError(
                f"invalid catchup {self.catchup!r}: expected one of {', '.join(CATCHUP_POLICIES)}"
            )
        if not _is_int(self.max_catchup) or self.max_catchup < 1:
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
        _zone(self.timezone)
        _check_cron(self.expression, self.day_or)
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
        zone = _zone(self.timezone)
        anchor = self.anchor
        if anchor is not None:
            if not isinstance(anchor, dt.datetime):
                raise UsageError(f"invalid anchor {anchor!r}: expected a datetime")
            if anchor.tzinfo is None:
                anchor = _resolve(anchor, zone).astimezone(zone)
            object.__setattr__(self, "anchor", anchor)
        self._check_policy()


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
) -> Cron:
    """A cron schedule, as `prefect.schedules.Cron`: `cron("0 3 * * *", "Europe/Berlin")`."""
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
) -> Interval:
    """An interval schedule: `interval(minutes=15)`, `interval(3600)`, `interval(timedelta())`."""
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
    )


# -- slots ---------------------------------------------------------------------------------


def next_fire_times(schedule: Schedule, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next `count` slots strictly after `after` (aware), as aware UTC datetimes.

    Ignores `enabled`: a listing can show when a disabled schedule would fire.
    """
    if not _is_int(count) or count < 0:
        raise ValueError(f"count must be an int >= 0, not {count!r}")
    slots: list[dt.datetime] = []
    for slot in _forward(schedule, _as_utc(after, "after")):
        if len(slots) == count:
            break
        slots.append(slot)
    return slots


def slots_between(
    schedule: Schedule, start: dt.datetime, end: dt.datetime, *, limit: int | None = None
) -> list[dt.datetime]:
    """Every slot in `[start, end]` (both aware, both included), for a backfill.

    With `limit`, more than `limit` slots raise `UsageError` (before computing them all).
    """
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    slots: list[dt.datetime] = []
    for slot in _forward(schedule, start - _US):
        if slot > end:
            break
        if limit is not None and len(slots) == limit:
            raise UsageError(
                f"{describe(schedule)} has more than {limit} slots between "
                f"{start.isoformat()} and {end.isoformat()}: narrow the range"
            )
        slots.append(slot)
    return slots


def due_slots(
    schedule: Schedule, last_fired: dt.datetime | None, now: dt.datetime
) -> list[dt.datetime]:
    """The slots in `(last_fired, now]` to start now, oldest first, by `schedule.catchup`.

    At most `max_catchup` slots (the most recent). `last_fired=None` (a new schedule) and a
    disabled schedule have none; see the module docstring.
    """
    now = _as_utc(now, "now")
    if last_fired is None or not schedule.enabled:
        return []
    last_fired = _as_utc(last_fired, "last_fired")
    floor = last_fired
    if schedule.catchup == "none":
        floor = max(floor, now - dt.timedelta(seconds=schedule.grace_seconds) - _US)
    wanted = 1 if schedule.catchup == "latest" else schedule.max_catchup
    slots: list[dt.datetime] = []
    for slot in _backward(schedule, now):
        if slot <= floor or len(slots) == wanted:
            break
        slots.append(slot)
    slots.reverse()
    return slots


def is_late(schedule: Schedule, slot: dt.datetime, started_at: dt.datetime) -> bool:
    """Whether a run that started at `started_at` started past its slot's grace period."""
    grace = dt.timedelta(seconds=schedule.grace_seconds)
    return _as_utc(started_at, "started_at") > _as_utc(slot, "slot") + grace


def jitter_delay(schedule: Schedule, run_id: str) -> float:
    """Seconds after its slot that the run `run_id` of a slot starts: in
    `[0, jitter_seconds]`, spread evenly over slots, and the same in every process for the
    same run (a restarted daemon keeps a slot's delay)."""
    if not schedule.jitter_seconds:
        return 0.0
    fraction = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return fraction * schedule.jitter_seconds


def _forward(schedule: Schedule, after: dt.datetime) -> Iterator[dt.datetime]:
    """Slots strictly after `after` (UTC), increasing."""
    if isinstance(schedule, Interval):
        step, anchor = _interval_us(schedule)
        k = _us_between(anchor, after) // step + 1
        while True:
            yield anchor + k * step * _US
            k += 1
    zone = _zone(schedule.timezone)
    wall = _wall(after, zone)
    yield from _dedupe(s for s in _cron_walls(schedule, wall, zone, forward=True) if s > after)


def _backward(schedule: Schedule, at: dt.datetime) -> Iterator[dt.datetime]:
    """Slots at or before `at` (UTC), decreasing."""
    if isinstance(schedule, Interval):
        step, anchor = _interval_us(schedule)
        k = _us_between(anchor, at) // step
        while True:
            yield anchor + k * step * _US
            k -= 1
    zone = _zone(schedule.timezone)
    wall = _wall(at, zone)
    # In the second pass of a repeated hour, later wall times still resolve to their first
    # occurrence, at or before `at`: start past the repeated stretch.
    first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    repeated = abs(_offset(first) - _offset(second))
    start = wall + repeated + dt.timedelta(minutes=1)
    yield from _dedupe(s for s in _cron_walls(schedule, start, zone, forward=False) if s <= at)


def _cron_walls(
    schedule: Cron, start: dt.datetime, zone: dt.tzinfo, *, forward: bool
) -> Iterator[dt.datetime]:
    """croniter's naive wall-clock matches after (or before) `start`, resolved to UTC."""
    from croniter import CroniterBadDateError, croniter

    it = croniter(_fields(schedule.expression), start, ret_type=dt.datetime, day_or=schedule.day_or)
    step = it.get_next if forward else it.get_prev
    while True:
        try:
            wall = step()
        except CroniterBadDateError:  # no match within croniter's 50-year search
            return
        yield _resolve(wall, zone)


def _dedupe(slots: Iterator[dt.datetime]) -> Iterator[dt.datetime]:
    """Drop repeats from a monotonic stream (skipped wall times share an instant)."""
    previous = None
    for slot in slots:
        if slot != previous:
            yield slot
        previous = slot


def _resolve(wall: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) a naive wall-clock time in `zone` fires at, by the DST rule."""
    first = wall.replace(tzinfo=zone, fold=0)  # PEP 495: fold=0 is the earlier occurrence
    instant = first.astimezone(UTC)
    if _wall(instant, zone) == wall.replace(fold=0):
        return instant
    # A skipped wall time. fold=0 read it with the offset before the transition, fold=1 with
    # the one after; the transition lies between: find it to the second.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(first.timestamp())
    after = _offset(dt.datetime.fromtimestamp(hi, zone))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(dt.datetime.fromtimestamp(mid, zone)) == after:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)


def _interval_us(schedule: Interval) -> tuple[int, dt.datetime]:
    anchor = EPOCH if schedule.anchor is None else schedule.anchor.astimezone(UTC)
    return schedule.interval // _US, anchor


def _us_between(start: dt.datetime, end: dt.datetime) -> int:
    return (end - start) // _US


def _wall(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _offset(value: dt.datetime) -> dt.timedelta:
    offset = value.utcoffset()
    assert offset is not None
    return offset


# -- run ids -------------------------------------------------------------------------------


def schedule_key(target: str, schedule: Schedule) -> str:
    """A stable key for `schedule` on `target`: `"<target>|<16 hex digits>"`.

    The digits hash the definition (not the policy): see the module docstring.
    """
    if isinstance(schedule, Cron):
        definition: dict[str, Any] = {
            "kind": "cron",
            "expression": _fields(schedule.expression),
            "timezone": schedule.timezone,
            "day_or": schedule.day_or,
        }
    else:
        step, anchor = _interval_us(schedule)
        definition = {
            "kind": "interval",
            "microseconds": step,
            "anchor": anchor.isoformat(),
            "timezone": schedule.timezone,
        }
    definition["name"] = schedule.name
    definition["parameters"] = schedule.parameters
    try:
        text = json.dumps(
            definition,
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"schedule parameters of {target} have no stable form: {exc}") from None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{target}|{digest[:16]}"


def slot_id(schedule_key: str, slot: dt.datetime) -> str:
    """The run id of `slot`: 32 hex digits, the same for the same key and instant."""
    text = f"{schedule_key}|{_as_utc(slot, 'slot').isoformat()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value // _US}us"
    if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(v, sort_keys=True, default=_json_default) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a {type(value).__qualname__} is not JSON-like")


# -- parameters ----------------------------------------------------------------------------

_FIELD = re.compile(r"scheduled_time(?:\.[a-z][a-z_]*)?")


class _Template(string.Formatter):
    """str.format that only knows `scheduled_time` (and its public attributes)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not _FIELD.fullmatch(field_name):
            raise ValueError(f"unknown field {{{field_name}}}: the only field is scheduled_time")
        return super().get_field(field_name, args, kwargs)


_TEMPLATE = _Template()


def render_parameters(
    parameters: Mapping[str, Any], scheduled_time: dt.datetime, *, timezone: str | None = None
) -> dict[str, Any]:
    """`parameters` with `{scheduled_time:...}` filled in string values (nested ones too).

    `scheduled_time` is formatted as given, or in `timezone` when one is given. Write `{{`
    and `}}` for literal braces. A bad template raises `UsageError` naming the parameter.
    """
    if timezone is not None:
        scheduled_time = _as_utc(scheduled_time, "scheduled_time").astimezone(_zone(timezone))

    def fill(name: str, value: Any) -> Any:
        if isinstance(value, str):
            if "{" not in value and "}" not in value:
                return value
            try:
                return _TEMPLATE.format(value, scheduled_time=scheduled_time)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                raise UsageError(
                    f"invalid template in parameter {name!r} ({value!r}): {exc}"
                ) from None
        if isinstance(value, dict):
            return {k: fill(name, v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(name, v) for v in value]
        if isinstance(value, tuple):
            return tuple(fill(name, v) for v in value)
        return value

    return {name: fill(name, value) for name, value in parameters.items()}


def run_parameters(schedule: Schedule, slot: dt.datetime) -> dict[str, Any]:
    """The parameters of the run for `slot`: rendered with the slot in the schedule's zone."""
    return render_parameters(schedule.parameters, slot, timezone=schedule.timezone)


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

_UNSUPPORTED = re.compile(r"(?i)[hr](?:\(|/|$)")


def _zone(name: str) -> dt.tzinfo:
    """The tzinfo of an IANA zone name; "UTC" works even without a time zone database."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"unknown time zone {name!r}")
    return _lookup_zone(name)


@cache
def _lookup_zone(name: str) -> dt.tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        import zoneinfo

        hint = "" if zoneinfo.available_timezones() else " (no time zone database: install tzdata)"
        raise UsageError(f"unknown time zone {name!r}{hint}") from None


_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _fields(expression: str) -> str:
    """The five fields of an expression (an alias such as @daily expanded)."""
    return _ALIASES.get(expression.lower(), expression)


def _check_cron(expression: str, day_or: bool) -> None:
    from croniter import CroniterBadDateError, CroniterError, croniter

    def bad(reason: str) -> UsageError:
        return UsageError(f"invalid cron expression {expression!r}: {reason}")

    if expression.startswith("@") and expression.lower() not in _ALIASES:
        raise bad(f"unknown alias; expected one of {', '.join(_ALIASES)}")
    fields = _fields(expression).split()
    if len(fields) != 5:
        raise bad(f"expected 5 fields ({' '.join(_FIELDS)}), got {len(fields)}")
    for name, value in zip(_FIELDS, fields, strict=True):
        if any(_UNSUPPORTED.match(part) for part in value.split(",")):
            raise bad(f"{name} field {value!r}: hashed (H) and random (R) values are not supported")
    expanded = " ".join(fields)
    try:
        croniter.expand(expanded)
        croniter(expanded, dt.datetime(2000, 1, 1), day_or=day_or).get_next(dt.datetime)
    except CroniterBadDateError:
        raise bad("it never fires (no matching date)") from None
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise bad(_blame(fields) or " ".join(str(exc).split()) or type(exc).__name__) from None


def _blame(fields: list[str]) -> str | None:
    """Which field of a rejected expression croniter also rejects on its own, if one."""
    from croniter import croniter

    for name, value in zip(_FIELDS, fields, strict=True):
        probe = " ".join(value if other == name else "*" for other in _FIELDS)
        try:
            croniter.expand(probe)
        except Exception:
            return f"bad {name} field {value!r}"
    return None


def _as_utc(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value!r}")
    return value.astimezone(UTC)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
