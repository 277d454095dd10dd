"""Schedules: definitions, fire times across DST, catch-up, run ids, templates.

Every function under test is pure: times are passed in, nothing sleeps. The DST expectations
are checked against an oracle written here (stepping wall-clock minutes one by one), not
against croniter, which only `orchlite.cron_expressions` may import.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchlite.errors import UsageError
from orchlite.schedule_runs import render_parameters, run_parameters, schedule_key, slot_id
from orchlite.schedule_slots import due_slots, is_late, jitter_delay, next_fire_times, slots_between
from orchlite.schedules import Cron, Interval, cron, describe, interval

UTC = dt.timezone.utc
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
ZONES = ["UTC", BERLIN, NEW_YORK, LORD_HOWE]
MINUTE = dt.timedelta(minutes=1)

fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@functools.cache
def transitions(zone: str, year: int) -> tuple[dt.datetime, ...]:
    """The instants (UTC) in `year` at which `zone` changes its offset, found by zoneinfo."""
    tz = ZoneInfo(zone)
    found, t, step = [], utc(year, 1, 1), dt.timedelta(hours=6)

    def offset(instant: dt.datetime) -> dt.timedelta | None:
        return instant.astimezone(tz).utcoffset()

    while t.year == year:
        if offset(t) != offset(t + step):
            lo, hi = int(t.timestamp()), int((t + step).timestamp())  # bisect to the second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (
                    (lo, mid)
                    if offset(dt.datetime.fromtimestamp(mid, UTC)) != offset(t)
                    else (mid, hi)
                )
            found.append(dt.datetime.fromtimestamp(hi, UTC))
        t += step
    return tuple(found)


def oracle(zone: str, matches, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The slots in [start, end] by the DST rule, stepping wall-clock minutes one by one.

    A wall time that exists fires at its first occurrence; one that does not fires at the
    next wall minute that does.
    """
    tz = ZoneInfo(zone)
    wall = (start - dt.timedelta(hours=3)).astimezone(tz).replace(tzinfo=None)
    stop = (end + dt.timedelta(hours=3)).astimezone(tz).replace(tzinfo=None)
    slots = set()
    while wall <= stop:
        if matches(wall):
            probe = wall
            while True:
                instant = probe.replace(tzinfo=tz).astimezone(UTC)
                if instant.astimezone(tz).replace(tzinfo=None) == probe:
                    break
                probe += MINUTE
            if start <= instant <= end:
                slots.add(instant)
        wall += MINUTE
    return sorted(slots)


# -- definitions ---------------------------------------------------------------------------


def test_helpers_build_the_dataclasses_with_defaults() -> None:
    c = cron("0 3 * * *", timezone=BERLIN)
    assert c == Cron("0 3 * * *", BERLIN)
    assert (c.catchup, c.max_catchup, c.grace_seconds) == ("latest", 10, 60.0)
    assert (c.parameters, c.enabled, c.name, c.day_or) == ({}, True, None, True)
    assert interval(minutes=15) == Interval(dt.timedelta(minutes=15)) == Interval(900)
    assert interval(hours=1, days=1).interval == dt.timedelta(hours=25)
    assert interval(seconds=90).interval == dt.timedelta(seconds=90)
    assert interval(dt.timedelta(hours=2)).interval == dt.timedelta(hours=2)
    anchor = utc(2026, 1, 1, 0, 7)
    assert interval(minutes=5, anchor_date=anchor).anchor == anchor


def test_definitions_are_frozen_and_hashable() -> None:
    c = cron("0 3 * * *", parameters={"x": 1}, name="nightly")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.expression = "0 4 * * *"  # type: ignore[misc]
    assert hash(c) == hash(cron("0 3 * * *", parameters={"x": 1}, name="nightly"))
    params = {"x": 1}
    c = cron("0 3 * * *", parameters=params)
    params["x"] = 2
    assert c.parameters == {"x": 1}


def test_expression_whitespace_is_normalized_and_aliases_work() -> None:
    assert cron("  0  3 * *\t* ").expression == "0 3 * * *"
    after = utc(2026, 5, 5, 12)
    assert next_fire_times(cron("@daily"), after, 1) == [utc(2026, 5, 6)]
    assert next_fire_times(cron("@hourly"), after, 1) == [utc(2026, 5, 5, 13)]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "bad minute field '61'"),
        ("0 25 * * *", "bad hour field '25'"),
        ("0 3 * * funday", "bad day-of-week field 'funday'"),
        ("*/0 * * * *", "bad minute field '*/0'"),
        ("* * *", "expected 5 fields"),
        ("0 0 * * * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("0 0 30 2 *", "never fires"),
        ("R * * * *", "random (R)"),
        ("H(0-29) * * * *", "hashed (H)"),
        ("@reboot", "unknown alias"),
    ],
)
def test_a_bad_cron_expression_is_one_usage_line_naming_it(expression: str, reason: str) -> None:
    with pytest.raises(UsageError) as info:
        cron(expression)
    message = str(info.value)
    assert message.startswith(f"invalid cron expression {' '.join(expression.split())!r}: ")
    assert reason in message
    assert "\n" not in message


def test_an_unknown_time_zone_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="unknown time zone 'Europe/Berln'"):
        cron("0 3 * * *", timezone="Europe/Berln")
    with pytest.raises(UsageError, match="unknown time zone 'Mars/Olympus'"):
        interval(minutes=5, timezone="Mars/Olympus")
    with pytest.raises(UsageError, match="unknown time zone"):
        cron("0 3 * * *", timezone="../etc/passwd")


@pytest.mark.parametrize("kwargs", [{"minutes": 0}, {"seconds": -5}, {"hours": -1, "minutes": 30}])
def test_an_interval_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match=r"invalid interval .*must be positive"):
        interval(**kwargs)
    with pytest.raises(UsageError, match="invalid interval"):
        Interval(0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"catchup": "some"}, "invalid catchup 'some'"),
        ({"max_catchup": 0}, "invalid max_catchup 0"),
        ({"grace_seconds": -1}, "invalid grace_seconds -1"),
        ({"parameters": {1: "x"}}, "str keys"),
        ({"jitter_seconds": -1}, "invalid jitter_seconds -1"),
        ({"jitter_seconds": "5"}, "invalid jitter_seconds '5'"),
        ({"jitter_seconds": float("inf")}, "invalid jitter_seconds inf"),
        ({"jitter_seconds": True}, "invalid jitter_seconds True"),
        ({"jitter_seconds": 1e300}, "at most a year"),
        ({"working_dir": ""}, "invalid working_dir ''"),
        ({"working_dir": 3}, "invalid working_dir 3"),
        ({"env": ["A=1"]}, "env must be a dict"),
        ({"env": {"A": 1}}, "env A: expected a string"),
        ({"env": {"1A": "x"}}, "1A"),
    ],
)
def test_policy_fields_are_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        cron("0 3 * * *", **kwargs)  # type: ignore[arg-type]


def test_jitter_delays_are_within_bounds_spread_and_stable() -> None:
    schedule = interval(minutes=5, jitter_seconds=90)
    key = schedule_key("flows.py:etl", schedule)
    start = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    ids = [slot_id(key, slot) for slot in next_fire_times(schedule, start, 400)]
    delays = [jitter_delay(schedule, run_id) for run_id in ids]
    assert all(0 <= d <= 90 for d in delays)
    # Spread over the whole range, not bunched: each sixth of it gets its share.
    sixths = [sum(1 for d in delays if k * 15 <= d < (k + 1) * 15) for k in range(6)]
    assert min(sixths) > 30, sixths
    assert [jitter_delay(schedule, run_id) for run_id in ids] == delays  # the same again
    assert jitter_delay(interval(minutes=5), ids[0]) == 0.0
    # The policy, not the definition: jitter keeps the schedule's key and slot ids.
    assert schedule_key("flows.py:etl", interval(minutes=5)) == key


def test_a_schedule_says_where_and_with_what_environment_its_runs_start() -> None:
    schedule = cron("0 3 * * *", working_dir="data", env={"B": "2", "A": "1"})
    assert (schedule.working_dir, schedule.env) == ("data", {"B": "2", "A": "1"})
    options = schedule.run_options()
    assert (options.working_dir, options.env) == ("data", (("A", "1"), ("B", "2")))
    every = Interval(dt.timedelta(minutes=5), working_dir="out", env={"TOKEN": "x"})
    assert every.run_options().env == (("TOKEN", "x"),)
    assert interval(minutes=5).run_options() == cron("0 3 * * *").run_options()
    # How runs start, not when: the schedule's key (and so its slots' run ids) stays.
    assert schedule_key("f.py:f", schedule) == schedule_key("f.py:f", cron("0 3 * * *"))


@pytest.mark.parametrize("seconds", [0.001, 0.5, 0.999999])
def test_an_interval_under_one_second_is_refused(seconds: float) -> None:
    with pytest.raises(UsageError, match=r"invalid interval .*: the shortest is 1s"):
        interval(seconds)
    with pytest.raises(UsageError, match="the shortest is 1s"):
        Interval(dt.timedelta(seconds=seconds))
    assert interval(1).interval == dt.timedelta(seconds=1)


def test_an_interval_under_one_second_in_orch_toml_or_code_is_one_problem(
    tmp_path: Path,
) -> None:
    from orchlite.project import load_schedules

    (tmp_path / "flows.py").write_text(
        "from orchlite import flow\n"
        "from orchlite.schedules import interval\n\n"
        "@flow(schedules=[interval(seconds=0.001)])\n"
        "def fast():\n    pass\n\n"
        "@flow\n"
        "def slow():\n    pass\n"
    )
    (tmp_path / "orch.toml").write_text(
        '[[schedule]]\ntarget = "flows.py:slow"\ninterval = 0.001\n\n'
        '[[schedule]]\ntarget = "flows.py:slow"\ninterval = 1\n'
    )
    entries, problems = load_schedules(tmp_path)
    assert [(e.source, e.target) for e in entries] == [("orch.toml", "flows.py:slow")]
    assert len(problems) == 2
    assert all("the shortest is 1s" in str(p) for p in problems), problems


def test_interval_takes_one_form_of_the_interval() -> None:
    with pytest.raises(UsageError, match="not both"):
        interval(60, minutes=1)
    with pytest.raises(UsageError, match="expected seconds or a timedelta"):
        Interval("15m")  # type: ignore[arg-type]


# -- fire times ----------------------------------------------------------------------------


def test_next_fire_times_are_strictly_after_and_in_utc() -> None:
    c = cron("0 3 * * *", timezone=BERLIN)
    after = utc(2026, 1, 10, 2)  # 03:00 Berlin: a slot, so not included
    assert next_fire_times(c, after, 3) == [
        utc(2026, 1, 11, 2),
        utc(2026, 1, 12, 2),
        utc(2026, 1, 13, 2),
    ]
    assert next_fire_times(c, after, 0) == []
    berlin_after = after.astimezone(ZoneInfo(BERLIN))
    assert next_fire_times(c, berlin_after, 3) == next_fire_times(c, after, 3)
    assert all(t.tzinfo is UTC for t in next_fire_times(c, after, 3))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times(cron("* * * * *"), dt.datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        slot_id("k", dt.datetime(2026, 1, 1))


def test_day_or_chooses_union_or_intersection() -> None:
    after = utc(2026, 1, 1)  # a Thursday
    either = next_fire_times(cron("0 0 13 * fri"), after, 3)
    assert either == [utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13)]
    both = next_fire_times(cron("0 0 13 * fri", day_or=False), after, 2)
    assert both == [utc(2026, 2, 13), utc(2026, 3, 13)]


# -- DST -----------------------------------------------------------------------------------


def test_the_transition_dates_the_dst_tests_rely_on() -> None:
    assert [t.date() for t in transitions(BERLIN, 2026)] == [
        dt.date(2026, 3, 29),
        dt.date(2026, 10, 25),
    ]
    assert [t.date() for t in transitions(NEW_YORK, 2026)] == [
        dt.date(2026, 3, 8),
        dt.date(2026, 11, 1),
    ]
    # Lord Howe moves by 30 minutes, at 15:00 / 15:30 UTC the day before (local dates below).
    tz = ZoneInfo(LORD_HOWE)
    local = [t.astimezone(tz) for t in transitions(LORD_HOWE, 2026)]
    assert [(t.date(), t.strftime("%H:%M")) for t in local] == [
        (dt.date(2026, 4, 5), "01:30"),  # 02:00 LHDT -> 01:30 LHST: 01:30-02:00 repeats
        (dt.date(2026, 10, 4), "02:30"),  # 02:00 LHST -> 02:30 LHDT: 02:00-02:30 skipped
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Spring forward: the skipped 02:30 fires at the first valid instant after it.
        (
            "30 2 * * *",
            BERLIN,
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
        ),
        ("30 2 * * *", NEW_YORK, utc(2026, 3, 7, 12), [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]),
        (
            "15 2 * * *",
            LORD_HOWE,
            utc(2026, 10, 2, 18),
            [utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)],
        ),
        # Fall back: the repeated wall time fires once, at its first occurrence.
        (
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        (
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            "45 1 * * *",
            LORD_HOWE,
            utc(2026, 4, 3, 18),
            [utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)],
        ),
    ],
)
def test_a_daily_slot_fires_once_across_a_transition(
    expression: str, zone: str, after: dt.datetime, expected: list[dt.datetime]
) -> None:
    c = cron(expression, timezone=zone)
    assert next_fire_times(c, after, 2) == expected
    # Asking from inside the repeated or skipped stretch does not fire the slot again.
    assert next_fire_times(c, expected[0], 1) == [expected[1]]
    assert next_fire_times(c, expected[0] + dt.timedelta(minutes=59), 1) == [expected[1]]


def test_berlin_examples_from_the_module_docstring() -> None:
    tz = ZoneInfo(BERLIN)
    spring = next_fire_times(cron("30 2 * * *", timezone=BERLIN), utc(2026, 3, 28, 12), 1)[0]
    assert spring.astimezone(tz).strftime("%H:%M %Z") == "03:00 CEST"
    fall = next_fire_times(cron("30 2 * * *", timezone=BERLIN), utc(2026, 10, 24, 12), 2)
    assert [t.astimezone(tz).strftime("%m-%d %H:%M %Z") for t in fall] == [
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
    ]


def _minute_matcher(minutes: set[int], hours: set[int] | None = None):
    return lambda wall: wall.minute in minutes and (hours is None or wall.hour in hours)


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, LORD_HOWE])
@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("0 * * * *", _minute_matcher({0})),
        ("*/15 * * * *", _minute_matcher({0, 15, 30, 45})),
        ("10,40 1-3 * * *", _minute_matcher({10, 40}, {1, 2, 3})),
    ],
)
def test_sub_daily_crons_fire_once_per_wall_slot_across_both_transitions(
    zone: str, expression: str, matches
) -> None:
    c = cron(expression, timezone=zone)
    tz = ZoneInfo(zone)
    for transition in transitions(zone, 2026):
        start, end = transition - dt.timedelta(hours=5), transition + dt.timedelta(hours=5)
        slots = slots_between(c, start, end)
        assert slots == oracle(zone, matches, start, end)
        assert len(set(slots)) == len(slots) and slots == sorted(slots)
        walls = [s.astimezone(tz).replace(tzinfo=None) for s in slots]
        assert len(set(walls)) == len(walls), "a wall-clock time fired twice"
        assert all(s.astimezone(tz).fold == 0 for s in slots), "fired in the repeated pass"


@pytest.mark.parametrize(
    ("day", "fires"), [(dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 96)]
)
def test_every_15_minutes_over_a_berlin_transition_day(day: dt.date, fires: int) -> None:
    tz = ZoneInfo(BERLIN)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz) - MINUTE
    slots = slots_between(cron("*/15 * * * *", timezone=BERLIN), start, end)
    # 23 real hours in spring (the skipped hour's four slots fire once, at 03:00);
    # 96 wall slots in autumn, each once (none in the repeated pass).
    assert len(slots) == fires


# -- intervals -----------------------------------------------------------------------------


def test_intervals_are_anchored_at_the_epoch_by_default() -> None:
    assert next_fire_times(interval(minutes=15), utc(2026, 3, 1, 10, 7), 2) == [
        utc(2026, 3, 1, 10, 15),
        utc(2026, 3, 1, 10, 30),
    ]
    assert next_fire_times(interval(days=1), utc(2026, 3, 1, 10), 1) == [utc(2026, 3, 2)]


def test_an_anchor_sets_the_phase_in_both_directions() -> None:
    i = interval(minutes=10, anchor_date=utc(2026, 6, 1, 0, 3))
    assert next_fire_times(i, utc(2026, 6, 1, 0, 3), 2) == [
        utc(2026, 6, 1, 0, 13),
        utc(2026, 6, 1, 0, 23),
    ]
    assert next_fire_times(i, utc(2026, 5, 1), 1) == [utc(2026, 5, 1, 0, 3)]


def test_intervals_count_elapsed_time_across_dst() -> None:
    i = interval(days=1, anchor_date=dt.datetime(2026, 3, 27, 3), timezone=BERLIN)  # naive: Berlin
    slots = next_fire_times(i, utc(2026, 3, 27), 4)
    assert slots == [
        utc(2026, 3, 27, 2),
        utc(2026, 3, 28, 2),
        utc(2026, 3, 29, 2),
        utc(2026, 3, 30, 2),
    ]
    tz = ZoneInfo(BERLIN)
    assert [s.astimezone(tz).hour for s in slots] == [3, 3, 4, 4]
    hourly = slots_between(interval(hours=1), utc(2026, 10, 24, 22), utc(2026, 10, 25, 3))
    assert len(hourly) == 6  # the repeated hour in Berlin makes no difference


def test_a_naive_anchor_in_a_skipped_hour_moves_to_the_transition() -> None:
    i = interval(days=1, anchor_date=dt.datetime(2026, 3, 29, 2, 30), timezone=BERLIN)
    assert i.anchor == utc(2026, 3, 29, 1)


# -- backfill ------------------------------------------------------------------------------


def test_slots_between_includes_both_ends() -> None:
    c = cron("0 * * * *")
    assert slots_between(c, utc(2026, 1, 1, 1), utc(2026, 1, 1, 3)) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert slots_between(c, utc(2026, 1, 1, 1, 1), utc(2026, 1, 1, 1, 59)) == []
    assert slots_between(c, utc(2026, 1, 2), utc(2026, 1, 1)) == []
    assert len(slots_between(interval(minutes=30), utc(2026, 1, 1), utc(2026, 1, 2))) == 49


def test_slots_between_refuses_more_than_the_limit() -> None:
    c = cron("* * * * *")
    assert len(slots_between(c, utc(2026, 1, 1), utc(2026, 1, 1, 0, 9), limit=10)) == 10
    with pytest.raises(UsageError, match="more than 10 slots"):
        slots_between(c, utc(2026, 1, 1), utc(2026, 1, 1, 0, 10), limit=10)


# -- catch-up ------------------------------------------------------------------------------


def test_a_new_schedule_has_nothing_due() -> None:
    assert due_slots(cron("* * * * *", catchup="all"), None, utc(2026, 1, 1, 12)) == []


def test_a_disabled_schedule_has_nothing_due() -> None:
    c = cron("* * * * *", enabled=False)
    assert due_slots(c, utc(2026, 1, 1), utc(2026, 1, 1, 1)) == []


def test_each_policy_fires_the_slot_that_just_came() -> None:
    for policy in ("none", "latest", "all"):
        c = cron("*/5 * * * *", catchup=policy)
        last, now = utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 5, 1)
        assert due_slots(c, last, now) == [utc(2026, 1, 1, 10, 5)]
        assert due_slots(c, utc(2026, 1, 1, 10, 5), now) == []  # already fired
        assert due_slots(c, last, utc(2026, 1, 1, 10, 4)) == []  # not yet


def test_catchup_none_skips_late_slots() -> None:
    c = cron("0 * * * *", catchup="none", grace_seconds=300)
    last = utc(2026, 1, 1, 6)
    assert due_slots(c, last, utc(2026, 1, 1, 9, 5)) == [utc(2026, 1, 1, 9)]  # exactly at grace
    assert due_slots(c, last, utc(2026, 1, 1, 9, 5, 1)) == []  # late: skipped
    quick = cron("* * * * *", catchup="none", grace_seconds=150)
    assert due_slots(quick, last, utc(2026, 1, 1, 9, 0, 30)) == [
        utc(2026, 1, 1, 8, 58),
        utc(2026, 1, 1, 8, 59),
        utc(2026, 1, 1, 9),
    ]


def test_catchup_latest_fires_only_the_most_recent_missed_slot() -> None:
    c = cron("0 * * * *", catchup="latest")
    assert due_slots(c, utc(2026, 1, 1, 6), utc(2026, 1, 1, 9, 30)) == [utc(2026, 1, 1, 9)]


def test_catchup_all_fires_every_missed_slot_up_to_max_catchup() -> None:
    c = cron("0 * * * *", catchup="all", max_catchup=5)
    assert due_slots(c, utc(2026, 1, 1, 6), utc(2026, 1, 1, 9, 30)) == [
        utc(2026, 1, 1, 7),
        utc(2026, 1, 1, 8),
        utc(2026, 1, 1, 9),
    ]
    assert due_slots(c, utc(2026, 1, 1), utc(2026, 1, 1, 9, 30)) == [
        utc(2026, 1, 1, h) for h in range(5, 10)
    ]


@pytest.mark.parametrize("policy", ["none", "latest", "all"])
@pytest.mark.parametrize(
    "make", [lambda **k: cron("* * * * *", **k), lambda **k: interval(60, **k)]
)
def test_a_three_day_outage_of_a_minutely_schedule_is_not_a_storm(policy: str, make) -> None:
    s = make(catchup=policy, max_catchup=10, grace_seconds=3600)
    last, now = utc(2026, 3, 27), utc(2026, 3, 30, 0, 0, 30)
    due = due_slots(s, last, now)
    assert 1 <= len(due) <= 10
    assert due[-1] == utc(2026, 3, 30) and due == sorted(due)


def test_catchup_over_a_fall_back_night() -> None:
    c = cron("30 * * * *", timezone=BERLIN, catchup="all", max_catchup=100)
    due = due_slots(c, utc(2026, 10, 24, 21), utc(2026, 10, 25, 4))
    assert due == slots_between(c, utc(2026, 10, 24, 21, 1), utc(2026, 10, 25, 4))
    tz = ZoneInfo(BERLIN)
    assert [d.astimezone(tz).strftime("%H:%M") for d in due] == [
        "23:30", "00:30", "01:30", "02:30", "03:30", "04:30",
    ]  # fmt: skip


def test_catchup_from_inside_the_repeated_hour() -> None:
    # 01:10 UTC is 02:10 CET, the second pass: 02:15-02:45 already fired in the first pass.
    c = cron("*/15 * * * *", timezone=BERLIN, catchup="all", max_catchup=100)
    now = utc(2026, 10, 25, 1, 10)
    first_pass = [utc(2026, 10, 25, 0, m) for m in (0, 15, 30, 45)]
    assert due_slots(c, utc(2026, 10, 24, 23, 50), now) == first_pass
    assert due_slots(dataclasses.replace(c, catchup="latest"), utc(2026, 10, 24, 23), now) == [
        utc(2026, 10, 25, 0, 45)
    ]
    assert due_slots(c, utc(2026, 10, 25, 0, 45), now) == []
    assert next_fire_times(c, now, 1) == [utc(2026, 10, 25, 2)]  # 03:00 CET


def test_is_late_uses_the_grace_period() -> None:
    c = cron("0 3 * * *", grace_seconds=60)
    slot = utc(2026, 1, 1, 3)
    assert not is_late(c, slot, slot + dt.timedelta(seconds=60))
    assert is_late(c, slot, slot + dt.timedelta(seconds=61))
    assert not is_late(c, slot, slot - dt.timedelta(seconds=1))


# -- run ids -------------------------------------------------------------------------------


def test_slot_id_is_32_hex_and_a_persisted_contract() -> None:
    sid = slot_id("flows.py:etl|abc", utc(2026, 3, 29, 1))
    assert re.fullmatch(r"[0-9a-f]{32}", sid)
    # The documented form: sha256(f"{key}|{slot in UTC, isoformat}")[:32]. Never change it.
    assert sid == "f820bcd3c46b56b81abce19aee11fc4e"
    assert sid == _reference_slot_id("flows.py:etl|abc", "2026-03-29T01:00:00+00:00")
    berlin = utc(2026, 3, 29, 1).astimezone(ZoneInfo(BERLIN))
    assert slot_id("flows.py:etl|abc", berlin) == sid


def _reference_slot_id(key: str, iso: str) -> str:
    import hashlib

    return hashlib.sha256(f"{key}|{iso}".encode()).hexdigest()[:32]


def test_schedule_key_is_a_persisted_contract() -> None:
    c = cron("0 3 * * *", timezone=BERLIN, parameters={"region": "eu"})
    assert schedule_key("flows.py:etl", c) == "flows.py:etl|1c9c007d826b1a03"
    assert schedule_key("flows.py:etl", interval(minutes=15)) == "flows.py:etl|4ddea427f6899d37"
    assert schedule_key("f.py:f", cron("@daily")) == schedule_key("f.py:f", cron("0 0 * * *"))


def test_schedule_key_is_stable_and_ignores_the_policy() -> None:
    base = cron("0 3 * * *", timezone=BERLIN, parameters={"region": "eu"})
    key = schedule_key("flows.py:etl", base)
    assert key.startswith("flows.py:etl|") and re.fullmatch(r"[0-9a-f]{16}", key.split("|")[-1])
    assert key == schedule_key(
        "flows.py:etl", cron("0  3 * * *", BERLIN, parameters={"region": "eu"})
    )
    tuned = dataclasses.replace(base, catchup="all", max_catchup=3, grace_seconds=5, enabled=False)
    assert schedule_key("flows.py:etl", tuned) == key
    others = [
        schedule_key("flows.py:other", base),
        schedule_key("flows.py:etl", dataclasses.replace(base, expression="0 4 * * *")),
        schedule_key("flows.py:etl", dataclasses.replace(base, timezone="UTC")),
        schedule_key("flows.py:etl", dataclasses.replace(base, parameters={"region": "us"})),
        schedule_key("flows.py:etl", dataclasses.replace(base, name="eu")),
        schedule_key("flows.py:etl", dataclasses.replace(base, day_or=False)),
    ]
    assert len({key, *others}) == len(others) + 1


def test_schedule_key_of_intervals() -> None:
    a = schedule_key("f.py:f", interval(minutes=15))
    assert a == schedule_key("f.py:f", interval(900, anchor_date=utc(1970, 1, 1)))
    assert a != schedule_key("f.py:f", interval(minutes=15, anchor_date=utc(2026, 1, 1, 0, 5)))
    assert a != schedule_key("f.py:f", interval(minutes=16))


def test_schedule_key_takes_common_parameter_types_and_refuses_others() -> None:
    c = cron("0 3 * * *", parameters={"day": dt.date(2026, 1, 1), "p": Path("x"), "s": {2, 1}})
    assert schedule_key("f.py:f", c) == schedule_key("f.py:f", c)
    with pytest.raises(UsageError, match="no stable form"):
        schedule_key("f.py:f", cron("0 3 * * *", parameters={"o": object()}))


# -- parameters ----------------------------------------------------------------------------


def test_render_parameters_fills_the_scheduled_time() -> None:
    slot = utc(2026, 3, 28, 23, 30)
    params = {
        "day": "{scheduled_time:%Y-%m-%d}",
        "path": "out/{scheduled_time:%Y/%m/%d}/{scheduled_time.hour}.csv",
        "n": 3,
        "plain": "no template",
        "nested": {"files": ["a-{scheduled_time:%d}", 1]},
        "literal": "{{not a field}}",
    }
    assert render_parameters(params, slot) == {
        "day": "2026-03-28",
        "path": "out/2026/03/28/23.csv",
        "n": 3,
        "plain": "no template",
        "nested": {"files": ["a-28", 1]},
        "literal": "{not a field}",
    }
    # In the schedule's zone, it is already the 29th in Berlin.
    assert render_parameters(params, slot, timezone=BERLIN)["day"] == "2026-03-29"
    c = cron("30 0 * * *", timezone=BERLIN, parameters={"day": "{scheduled_time:%Y-%m-%d}"})
    assert run_parameters(c, slot) == {"day": "2026-03-29"}
    assert params["day"] == "{scheduled_time:%Y-%m-%d}"  # not modified


@pytest.mark.parametrize(
    "template",
    ["{scheduled_time:%Y", "{date}", "{0}", "{}", "{scheduled_time.__class__}", '{"a": 1}'],
)
def test_a_bad_template_is_a_usage_error_naming_the_parameter(template: str) -> None:
    with pytest.raises(UsageError, match="invalid template in parameter 'day'"):
        render_parameters({"day": template, "ok": "x"}, utc(2026, 1, 1))


# -- listings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (cron("0 3 * * *", timezone=BERLIN), "cron 0 3 * * * (Europe/Berlin)"),
        (cron("@daily"), "cron @daily (UTC)"),
        (
            cron("0 0 13 * fri", day_or=False),
            "cron 0 0 13 * fri (UTC, day-of-month and day-of-week)",
        ),
        (interval(minutes=15), "every 15m"),
        (interval(hours=1, minutes=30), "every 1h30m"),
        (interval(days=1), "every 1d"),
        (interval(90), "every 1m30s"),
        (interval(1.5), "every 1.5s"),
        (
            interval(days=1, anchor_date=utc(2026, 1, 1, 2)),
            "every 1d from 2026-01-01T02:00:00+00:00",
        ),
    ],
)
def test_describe(schedule, text: str) -> None:
    assert describe(schedule) == text


# -- properties ----------------------------------------------------------------------------

minute_fields = st.one_of(
    st.sampled_from(["*", "*/15", "*/7", "0", "30", "59"]),
    st.sets(st.integers(0, 59), min_size=1, max_size=4).map(
        lambda s: ",".join(map(str, sorted(s)))
    ),
)
hour_fields = st.one_of(
    st.just("*"),
    st.sets(st.integers(0, 23), min_size=1, max_size=4).map(
        lambda s: ",".join(map(str, sorted(s)))
    ),
)


def _field_values(text: str, top: int) -> set[int]:
    if text == "*":
        return set(range(top + 1))
    if text.startswith("*/"):
        return set(range(0, top + 1, int(text[2:])))
    return {int(v) for v in text.split(",")}


_TRANSITIONS = [t for zone in ZONES[1:] for year in (2026, 2027) for t in transitions(zone, year)]
instants = st.one_of(
    st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2030, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    st.tuples(st.sampled_from(_TRANSITIONS), st.integers(-180, 180)).map(
        lambda p: p[0] + dt.timedelta(minutes=p[1], seconds=p[1] % 7)
    ),
)


@fast
@given(minutes=minute_fields, hours=hour_fields, zone=st.sampled_from(ZONES), after=instants)
def test_fire_times_are_increasing_valid_matches(
    minutes: str, hours: str, zone: str, after: dt.datetime
) -> None:
    c = cron(f"{minutes} {hours} * * *", timezone=zone)
    slots = next_fire_times(c, after, 8)
    assert len(slots) == 8
    assert all(a < b for a, b in itertools.pairwise([after, *slots]))
    tz = ZoneInfo(zone) if zone != "UTC" else UTC
    want_minutes, want_hours = _field_values(minutes, 59), _field_values(hours, 23)
    for slot in slots:
        local = slot.astimezone(tz)
        assert local.fold == 0
        if local.minute in want_minutes and local.hour in want_hours:
            continue
        # Otherwise the slot is a transition instant standing in for a skipped wall time.
        before = (slot - dt.timedelta(seconds=1)).astimezone(tz)
        assert before.utcoffset() != local.utcoffset()
        shift = local.utcoffset() - before.utcoffset()
        wall, skipped = local.replace(tzinfo=None), []
        probe = wall - shift
        while probe < wall:
            skipped.append(probe)
            probe += MINUTE
        assert any(w.minute in want_minutes and w.hour in want_hours for w in skipped)
    # Asking again from any returned slot continues the same sequence.
    assert next_fire_times(c, slots[2], 5) == slots[3:]


@fast
@given(
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(["*/15 * * * *", "0 * * * *", "30 2 * * *", "45 1 * * *"]),
    now=instants,
    span_hours=st.integers(1, 30),
)
def test_catching_up_everything_equals_the_backfill(
    zone: str, expression: str, now: dt.datetime, span_hours: int
) -> None:
    c = cron(expression, timezone=zone, catchup="all", max_catchup=10_000)
    last = now - dt.timedelta(hours=span_hours)
    assert due_slots(c, last, now) == slots_between(c, last + dt.timedelta(microseconds=1), now)
    latest = dataclasses.replace(c, catchup="latest")
    assert due_slots(latest, last, now) == due_slots(c, last, now)[-1:]


@fast
@given(
    seconds=st.integers(1, 3 * 86400),
    anchor=instants,
    after=instants,
    count=st.integers(1, 5),
)
def test_interval_slots_are_evenly_spaced_on_the_anchor_grid(
    seconds: int, anchor: dt.datetime, after: dt.datetime, count: int
) -> None:
    i = interval(seconds, anchor_date=anchor)
    slots = next_fire_times(i, after, count)
    step = dt.timedelta(seconds=seconds)
    assert slots[0] > after >= slots[0] - step
    assert all(b - a == step for a, b in itertools.pairwise(slots))
    assert all((s - anchor) % step == dt.timedelta(0) for s in slots)


@fast
@given(key=st.text(max_size=30), a=instants, b=instants)
def test_slot_id_is_deterministic_and_distinct(key: str, a: dt.datetime, b: dt.datetime) -> None:
    assert slot_id(key, a) == slot_id(key, a.astimezone(ZoneInfo(LORD_HOWE)))
    assert (slot_id(key, a) == slot_id(key, b)) == (a == b)
    assert slot_id(key, a) != slot_id(key + "x", a)


# -- import boundaries ---------------------------------------------------------------------


def test_only_the_cron_expressions_module_imports_croniter() -> None:
    package = Path(__file__).resolve().parent.parent / "orchlite"
    pattern = re.compile(r"^\s*(from|import)\s+croniter\b", re.MULTILINE)
    users = sorted(p.name for p in package.rglob("*.py") if pattern.search(p.read_text()))
    assert users == ["cron_expressions.py"]


def test_importing_schedules_does_not_load_croniter() -> None:
    code = "import sys, orchlite.schedules; assert 'croniter' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
