"""The runs screen's filters as typed: states, tags and time ranges."""

from __future__ import annotations

import datetime as dt

import pytest

from orchlite.states import StateName
from orchlite.tui.run_filters import (
    Bound,
    FilterError,
    TimeRange,
    parse_states,
    parse_tags,
    parse_time_range,
)

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR


def local(*fields: int) -> float:
    """A local time as a timestamp (what a date typed without an offset means)."""
    return dt.datetime(*fields).timestamp()  # type: ignore[arg-type]


def test_states_in_any_case_and_spelling_each_once() -> None:
    assert parse_states("failed,crashed") == ("FAILED", "CRASHED")
    assert parse_states(" Failed , TIMED_OUT,timedout,, failed ") == ("FAILED", "TIMED_OUT")
    assert parse_states("") == parse_states(" , ") == ()


def test_an_unknown_state_names_every_state() -> None:
    with pytest.raises(FilterError, match=r"unknown state 'fialed' \(one of: SCHEDULED, "):
        parse_states("failed,fialed")
    assert StateName.parse("cancelling") is StateName.CANCELLING
    with pytest.raises(ValueError, match="unknown state 'x'"):
        StateName.parse("x")


def test_tags_are_kept_as_written_each_once() -> None:
    assert parse_tags("nightly, eu ,nightly") == ("nightly", "eu")
    assert parse_tags("Team A") == ("Team A",)
    assert parse_tags(" ") == ()


@pytest.mark.parametrize(
    ("typed", "since", "until"),
    [
        ("24h", NOW - DAY, None),
        ("7D", NOW - 7 * DAY, None),
        (" 90m ", NOW - 1.5 * HOUR, None),
        ("7d..1d", NOW - 7 * DAY, NOW - DAY),
        ("..2h", None, NOW - 2 * HOUR),
    ],
)
def test_an_age_is_counted_back_from_now_at_each_read(
    typed: str, since: float | None, until: float | None
) -> None:
    window = parse_time_range(typed)
    assert window is not None
    assert window.bounds(NOW) == (since, until)
    later = window.bounds(NOW + HOUR)  # the screen left open: the window moves on
    assert later == tuple(None if b is None else b + HOUR for b in (since, until))


def test_a_day_starts_a_range_at_its_start_and_ends_it_at_its_end() -> None:
    assert parse_time_range("2026-12-01") == TimeRange(since=Bound(local(2026, 12, 1)))
    assert parse_time_range("2026-12-01..2026-12-03") == TimeRange(
        since=Bound(local(2026, 12, 1)), until=Bound(local(2026, 12, 4))
    )
    assert parse_time_range("..2026-12-31") == TimeRange(until=Bound(local(2027, 1, 1)))


def test_a_moment_is_local_unless_it_says_its_offset() -> None:
    window = parse_time_range("2026-12-01T08:30..2026-12-01T09:00Z")
    assert window == TimeRange(
        since=Bound(local(2026, 12, 1, 8, 30)),
        until=Bound(dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc).timestamp()),
    )
    both = parse_time_range("1d..2026-12-01 10:00+01:00")
    assert both is not None and both.bounds(NOW) == (
        NOW - DAY,
        dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc).timestamp(),
    )


def test_nothing_typed_is_no_range_and_a_bad_one_says_what_is_expected() -> None:
    assert parse_time_range("  ") is None
    for typed in ("yesterday", "..", "24", "2026-13-01", "1d...2d", "7d..soon"):
        with pytest.raises(FilterError, match=r"expected 24h, 7d, a date \(2026-12-01\)"):
            parse_time_range(typed)
