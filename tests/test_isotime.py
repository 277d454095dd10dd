"""ISO 8601 times typed by users parse the same on every supported Python."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchlite.isotime import parse_iso_datetime

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-28T12:00:00Z", dt.datetime(2026, 3, 28, 12, tzinfo=UTC)),
        ("2026-03-28T12:00z", dt.datetime(2026, 3, 28, 12, tzinfo=UTC)),
        (" 2026-03-28T12:00:00.250Z ", dt.datetime(2026, 3, 28, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-03-28T13:00:00+01:00", dt.datetime(2026, 3, 28, 12, tzinfo=UTC)),
        ("2026-03-28T12:00", dt.datetime(2026, 3, 28, 12)),
    ],
)
def test_a_trailing_z_is_utc_and_offsets_are_kept(text: str, expected: dt.datetime) -> None:
    parsed = parse_iso_datetime(text)
    assert parsed == expected
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize("text", ["", "Z", "yesterday", "2026-13-01T00:00Z", "2026-03-28T25:00"])
def test_text_that_is_not_a_time_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_datetime(text)


@given(st.datetimes(timezones=st.just(UTC)))
def test_isoformat_with_z_round_trips(moment: dt.datetime) -> None:
    text = moment.isoformat().replace("+00:00", "Z")
    assert parse_iso_datetime(text) == moment
