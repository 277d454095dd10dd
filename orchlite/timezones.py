"""Time zones and wall-clock times: which instant a schedule's wall-clock time is.

A cron expression names wall-clock times in a time zone; `resolve_wall` maps each one to the
instant it fires at, by the rule `orchlite.schedules` documents: a skipped wall time (spring
forward) fires at the instant of the transition, a repeated one (fall back) at its first
occurrence. The rule is ours, not croniter's: croniter only matches naive wall-clock times
(`orchlite.cron_expressions`), so the rule does not depend on croniter's version. (Given
aware datetimes, croniter 7 fires "30 2 * * *" twice on Berlin's fall-back day.)
"""

from __future__ import annotations

import datetime as dt
import math
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UsageError

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = dt.timedelta(microseconds=1)


def zone_of(name: str) -> dt.tzinfo:
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


def resolve_wall(wall: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) a naive wall-clock time in `zone` fires at, by the DST rule."""
    first = wall.replace(tzinfo=zone, fold=0)  # PEP 495: fold=0 is the earlier occurrence
    instant = first.astimezone(UTC)
    if wall_of(instant, zone) == wall.replace(fold=0):
        return instant
    # A skipped wall time. fold=0 read it with the offset before the transition, fold=1 with
    # the one after; the transition lies between: find it to the second.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(first.timestamp())
    after = utc_offset(dt.datetime.fromtimestamp(hi, zone))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if utc_offset(dt.datetime.fromtimestamp(mid, zone)) == after:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)


def wall_of(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The naive wall-clock time in `zone` of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def utc_offset(value: dt.datetime) -> dt.timedelta:
    """The UTC offset of an aware datetime."""
    offset = value.utcoffset()
    assert offset is not None
    return offset


def as_utc(value: dt.datetime, what: str) -> dt.datetime:
    """An aware datetime in UTC; ValueError naming `what` for a naive one."""
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value!r}")
    return value.astimezone(UTC)
