"""`orch cron-preview`: a cron expression's next fire times in a time zone, by the daemon's
DST rules, before it goes into a schedule."""

from __future__ import annotations

from tests.helpers import Project, assert_usage_error


def test_cron_preview_follows_the_daemons_dst_rules(project: Project) -> None:
    fall_back = project.json(
        "cron-preview", "30 2 * * *", "--timezone", "Europe/Berlin", "-n", "2",
        "--after", "2026-10-24T12:00:00+00:00", "--json",
    )  # fmt: skip
    # The repeated 02:30 fires once, at its first occurrence (CEST).
    assert [r["local"] for r in fall_back] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    spring = project.json(
        "cron-preview", "30 2 * * *", "--tz", "Europe/Berlin", "-n", "1",
        "--after", "2026-03-28T12:00:00Z", "--json",
    )  # fmt: skip
    # The skipped 02:30 fires at the end of the gap, 03:00 CEST.
    assert spring == [
        {"local": "2026-03-29T03:00:00+02:00", "utc": "2026-03-29T01:00:00+00:00", "zone": "CEST"}
    ]
    text = project.orch(
        "cron-preview", "0 6 * * 1", "--after", "2026-03-01T00:00:00", "-n", "3"
    ).stdout.splitlines()
    assert text[0].split() == ["#", "LOCAL", "(UTC)", "UTC"]
    assert text[1].split()[1:3] == ["Mon", "2026-03-02"] and len(text) == 4


def test_cron_preview_refuses_bad_input_in_one_line(project: Project) -> None:
    assert_usage_error(project.orch("cron-preview", "61 * * * *", expect=2), 2, "minute")
    bad_zone = project.orch("cron-preview", "0 * * * *", "--tz", "Mars/Base", expect=2)
    assert_usage_error(bad_zone, 2, "Mars/Base")
    bad_after = project.orch("cron-preview", "0 * * * *", "--after", "soon", expect=2)
    assert_usage_error(bad_after, 2, "--after")
