"""Cron expressions: the five fields, `@daily`-style aliases, their validation, and the
wall-clock times they match. The only module that imports croniter (lazily: importing it
does not load croniter; checking or iterating an expression does)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from .errors import UsageError
from .timezones import resolve_wall

_UNSUPPORTED = re.compile(r"(?i)[hr](?:\(|/|$)")

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


def cron_fields(expression: str) -> str:
    """The five fields of an expression (an alias such as @daily expanded)."""
    return _ALIASES.get(expression.lower(), expression)


def check_cron(expression: str, day_or: bool) -> None:
    """UsageError saying what is wrong with `expression`: an unknown alias, a field count
    other than five, hashed (H) or random (R) values, a field croniter refuses, or no date
    it would ever fire on."""
    from croniter import CroniterBadDateError, CroniterError, croniter

    def bad(reason: str) -> UsageError:
        return UsageError(f"invalid cron expression {expression!r}: {reason}")

    if expression.startswith("@") and expression.lower() not in _ALIASES:
        raise bad(f"unknown alias; expected one of {', '.join(_ALIASES)}")
    fields = cron_fields(expression).split()
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


def cron_walls(
    expression: str, day_or: bool, start: dt.datetime, zone: dt.tzinfo, *, forward: bool
) -> Iterator[dt.datetime]:
    """croniter's naive wall-clock matches of `expression` after (or before) `start`,
    resolved to UTC instants by the DST rule (`resolve_wall`); repeats are the caller's to
    drop."""
    from croniter import CroniterBadDateError, croniter

    it = croniter(cron_fields(expression), start, ret_type=dt.datetime, day_or=day_or)
    step = it.get_next if forward else it.get_prev
    while True:
        try:
            wall = step()
        except CroniterBadDateError:  # no match within croniter's 50-year search
            return
        yield resolve_wall(wall, zone)
