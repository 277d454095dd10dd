"""`orch import-crontab` through the CLI: its output is an orch.toml that `orch schedules`
and `orch upcoming` accept, written where asked and never over a file by accident."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import Project, assert_usage_error

CRONTAB = r"""MAILTO=ops@example.com
CRON_TZ=Europe/Berlin
PGHOST=localhost
30 2 * * *   pg_dump shop > /var/backups/shop-$(date +\%a).sql
*/15 8-18 * * mon-fri  python3 etl.py
@weekly      ./cleanup.sh
@reboot      ./warm-cache.sh
0 5 * * *    mail -s report ops%see attached
"""
NAMES = ["pg_dump-shop", "python3-etl.py", "cleanup.sh"]


def _stdin(project: Project, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return project.orch("import-crontab", *args, input=text)


def test_stdin_to_an_orch_toml_that_the_schedules_commands_accept(project: Project) -> None:
    proc = _stdin(project, CRONTAB)  # no FILE: stdin
    assert proc.stdout == _stdin(project, CRONTAB, "-").stdout
    assert "# stdin line 7 not translated: @reboot has no equivalent" in proc.stdout
    assert "# stdin line 8 not translated: the command has a %" in proc.stdout
    warnings = proc.stderr.splitlines()
    assert [w.split(": not translated")[0] for w in warnings] == [
        "warning: stdin:7",
        "warning: stdin:8",
    ]
    (project.root / "orch.toml").write_text(proc.stdout)

    listed = project.json("schedules", "--json")
    assert listed["errors"] == []
    assert [row["schedule_name"] for row in listed["schedules"]] == NAMES
    assert {row["schedule"] for row in listed["schedules"]} == {
        "cron 30 2 * * * (Europe/Berlin)",
        "cron */15 8-18 * * mon-fri (Europe/Berlin)",
        "cron @weekly (Europe/Berlin)",
    }
    upcoming = project.json("upcoming", "--json")
    assert sorted(row["name"] for row in upcoming) == sorted(NAMES)
    assert all(row["state"] == "active" and row["next"] for row in upcoming)


def test_output_refuses_an_existing_file_unless_told(project: Project) -> None:
    project.write("crontab.txt", CRONTAB)
    project.orch("import-crontab", "crontab.txt", "--output", "orch.toml")
    first = (project.root / "orch.toml").read_text()
    assert "# crontab.txt line 4: 30 2 * * *" in first

    refused = project.orch("import-crontab", "crontab.txt", "-o", "orch.toml", expect=None)
    assert_usage_error(refused, 2, "orch.toml exists", "--append", "--force")
    assert (project.root / "orch.toml").read_text() == first

    project.orch("import-crontab", "crontab.txt", "-o", "orch.toml", "--force")
    assert (project.root / "orch.toml").read_text() == first


def test_append_adds_to_an_orch_toml(project: Project) -> None:
    project.write("orch.toml", "[daemon]\nretention_days = 7\n")
    project.write("more.txt", "0 1 * * * ./more.sh\n")
    project.orch("import-crontab", "more.txt", "-o", "orch.toml", "--append")
    assert (project.root / "orch.toml").read_text().startswith("[daemon]\nretention_days = 7\n")
    listed = project.json("schedules", "--json")
    assert [row["schedule_name"] for row in listed["schedules"]] == ["more.sh"]


def test_a_system_crontab_with_a_user_field(project: Project) -> None:
    project.write("backup", "SHELL=/bin/sh\n17 * * * * root cd / && ls\n@daily postgres true\n")
    proc = project.orch("import-crontab", "--system", "backup", "--tz", "UTC")
    (project.root / "orch.toml").write_text(proc.stdout)
    listed = project.json("schedules", "--json")
    assert listed["errors"] == []
    assert [row["target"] for row in listed["schedules"]] == ["$ ls", "$ true"]  # ls in /
    assert 'working_dir = "/"' in proc.stdout


BAD_INPUT = {
    "missing": (["nowhere.txt"], "cannot read the crontab nowhere.txt"),
    "folder": (["folder"], "cannot read the crontab folder"),
    "not utf-8": (["latin1.txt"], "cannot read the crontab latin1.txt"),
    "force and append": (["c.txt", "-o", "x.toml", "--force", "--append"], "--force or --append"),
    "force alone": (["c.txt", "--force"], "--output"),
}


@pytest.mark.parametrize(("args", "needle"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_line(project: Project, args: list[str], needle: str) -> None:
    (project.root / "folder").mkdir()
    (project.root / "latin1.txt").write_bytes(b"0 1 * * * echo caf\xe9\n")
    project.write("c.txt", "0 1 * * * true\n")
    assert_usage_error(project.orch("import-crontab", *args, expect=None), 2, needle)
    assert not (project.root / "x.toml").exists()


def test_an_unknown_zone_is_a_comment_for_each_job(project: Project) -> None:
    project.write("c.txt", "0 1 * * * true\n")
    proc = project.orch("import-crontab", "c.txt", "--tz", "Mars/Base")
    assert "# c.txt line 1 not translated: unknown time zone 'Mars/Base'" in proc.stdout
