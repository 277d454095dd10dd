"""The runs screen's filters, as typed in its boxes.

    states       failed,crashed          any of these states, in any case
    time range   24h   7d   90m          created in the last 24 hours, 7 days, 90 minutes
                 2026-12-01              created since that day began (local time)
                 2026-12-01T08:00Z       since that moment (ISO 8601; `Z` or an offset: UTC)
                 2026-12-01..2026-12-03  a range: from the first day's start to the last one's
                                         end; either end may be left out (`..2026-12-01`),
                                         and an age is an end too (`7d..1d`: from 7 days ago
                                         to 1 day ago)
    tags         nightly,eu              runs carrying every one of these tags

Parsing checks what was typed and raises `FilterError` with what was expected; an age stays
an age (`TimeRange.bounds(now)` turns it into times at each read), so a screen left open on
`24h` keeps showing the last 24 hours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..errors import UsageError
from ..isotime import parse_iso_datetime
from ..states import StateName
from ..views import parse_age

TIME_HINT = "24h, 7d, a date (2026-12-01) or a range (7d..1d, 2026-12-01..2026-12-03)"


class FilterError(ValueError):
    """What was typed in a filter box is not a filter; the message says what is."""


def parse_states(text: str) -> tuple[str, ...]:
    """`failed, Crashed` → ("FAILED", "CRASHED"): the states named, each once."""
    states: list[str] = []
    for part in _parts(text):
        try:
            state = StateName.parse(part).value
        except ValueError as exc:
            raise FilterError(str(exc)) from None
        if state not in states:
            states.append(state)
    return tuple(states)


def parse_tags(text: str) -> tuple[str, ...]:
    """`nightly, eu` → ("nightly", "eu"): the tags named, each once, as written."""
    return tuple(dict.fromkeys(_parts(text)))


def _parts(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Bound:
    """One end of a time range."""

    value: float
    """A timestamp, or with `age` a number of seconds before now."""
    age: bool = False

    def at(self, now: float) -> float:
        return now - self.value if self.age else self.value


@dataclass(frozen=True)
class TimeRange:
    since: Bound | None = None
    until: Bound | None = None

    def bounds(self, now: float) -> tuple[float | None, float | None]:
        """(since, until) as timestamps at `now`: runs created at or after `since` and
        before `until` match (None: no bound)."""
        since = None if self.since is None else self.since.at(now)
        until = None if self.until is None else self.until.at(now)
        return since, until


def parse_time_range(text: str) -> TimeRange | None:
    """The range typed (see the module doc); None when nothing is."""
    text = text.strip()
    if not text:
        return None
    start, dots, end = text.partition("..")
    if not dots:
        return TimeRange(since=_bound(text, end_of_day=False))
    if not start.strip() and not end.strip():
        raise FilterError(f"bad time range {text!r}: expected {TIME_HINT}")
    return TimeRange(
        since=_bound(start, end_of_day=False) if start.strip() else None,
        until=_bound(end, end_of_day=True) if end.strip() else None,
    )


def _bound(text: str, *, end_of_day: bool) -> Bound:
    """An age or a moment; a day alone at the end of a range means the end of that day."""
    text = text.strip()
    try:
        return Bound(parse_age(text), age=True)
    except UsageError:
        pass
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = dt.datetime.combine(day + dt.timedelta(days=1 if end_of_day else 0), dt.time())
        return Bound(start.timestamp())  # local midnight
    try:
        return Bound(parse_iso_datetime(text).timestamp())  # naive: local time
    except ValueError:
        raise FilterError(f"bad time {text!r}: expected {TIME_HINT}") from None
