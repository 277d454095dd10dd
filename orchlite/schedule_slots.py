"""The slots of a schedule: the next ones, those in a range, those due now, and when each
slot's run may start (lateness, jitter). Pure functions of their arguments, by the rules of
`orchlite.schedules` (daylight saving time included)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

from .cron_expressions import cron_walls
from .errors import UsageError
from .schedules import Interval, Schedule, describe, is_int
from .timezones import ONE_US, as_utc, utc_offset, wall_of, zone_of


def next_fire_times(schedule: Schedule, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next `count` slots strictly after `after` (aware), as aware UTC datetimes.

    Ignores `enabled`: a listing can show when a disabled schedule would fire.
    """
    if not is_int(count) or count < 0:
        raise ValueError(f"count must be an int >= 0, not {count!r}")
    slots: list[dt.datetime] = []
    for slot in _forward(schedule, as_utc(after, "after")):
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
    start, end = as_utc(start, "start"), as_utc(end, "end")
    slots: list[dt.datetime] = []
    for slot in _forward(schedule, start - ONE_US):
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
    now = as_utc(now, "now")
    if last_fired is None or not schedule.enabled:
        return []
    last_fired = as_utc(last_fired, "last_fired")
    floor = last_fired
    if schedule.catchup == "none":
        floor = max(floor, now - dt.timedelta(seconds=schedule.grace_seconds) - ONE_US)
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
    return as_utc(started_at, "started_at") > as_utc(slot, "slot") + grace


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
        step, anchor = schedule.grid()
        k = _us_between(anchor, after) // step + 1
        while True:
            yield anchor + k * step * ONE_US
            k += 1
    zone = zone_of(schedule.timezone)
    wall = wall_of(after, zone)
    yield from _dedupe(
        s
        for s in cron_walls(schedule.expression, schedule.day_or, wall, zone, forward=True)
        if s > after
    )


def _backward(schedule: Schedule, at: dt.datetime) -> Iterator[dt.datetime]:
    """Slots at or before `at` (UTC), decreasing."""
    if isinstance(schedule, Interval):
        step, anchor = schedule.grid()
        k = _us_between(anchor, at) // step
        while True:
            yield anchor + k * step * ONE_US
            k -= 1
    zone = zone_of(schedule.timezone)
    wall = wall_of(at, zone)
    # In the second pass of a repeated hour, later wall times still resolve to their first
    # occurrence, at or before `at`: start past the repeated stretch.
    first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    repeated = abs(utc_offset(first) - utc_offset(second))
    start = wall + repeated + dt.timedelta(minutes=1)
    yield from _dedupe(
        s
        for s in cron_walls(schedule.expression, schedule.day_or, start, zone, forward=False)
        if s <= at
    )


def _dedupe(slots: Iterator[dt.datetime]) -> Iterator[dt.datetime]:
    """Drop repeats from a monotonic stream (skipped wall times share an instant)."""
    previous = None
    for slot in slots:
        if slot != previous:
            yield slot
        previous = slot


def _us_between(start: dt.datetime, end: dt.datetime) -> int:
    return (end - start) // ONE_US
