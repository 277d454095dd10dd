"""`orch logs`: `--task` by task name, `-n/--tail`, `--json` (NDJSON), and `orch version`."""

from __future__ import annotations

import json

from tests.helpers import Project, assert_usage_error


def test_orch_logs_picks_tasks_by_name_tails_and_prints_ndjson(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow, get_run_logger, task

        @task
        def load(part: int) -> None:
            get_run_logger().info("loaded part %s", part)

        @task
        def report() -> None:
            get_run_logger().warning("report ready")

        @flow
        def etl() -> None:
            get_run_logger().info("starting")
            load.map([0, 1, 2]).wait()
            report()
        """,
    )
    project.orch("run", "flows.py:etl")

    loads = project.orch("logs", "last", "--task", "load").stdout.splitlines()
    assert sorted(line.split(" - ")[1] for line in loads if "loaded part" in line) == [
        "loaded part 0",
        "loaded part 1",
        "loaded part 2",
    ]
    assert all("Task run 'load-" in line for line in loads)
    one = project.orch("logs", "last", "--task", "load-1").stdout
    assert "loaded part 1" in one and "loaded part 0" not in one

    every = project.orch("logs", "last").stdout.splitlines()
    last_two = project.orch("logs", "last", "-n", "2").stdout.splitlines()
    assert last_two == every[-2:]

    records = [
        json.loads(line) for line in project.orch("logs", "last", "--json").stdout.splitlines()
    ]
    assert [r["message"] for r in records] == [line.split(" - ", 1)[1] for line in every]
    warning = next(r for r in records if r["message"] == "report ready")
    assert (warning["level"], warning["task"]) == ("WARNING", "report-0")
    assert records[0]["task"] is None and records[0]["ts"].endswith("+00:00")

    bad = project.orch("logs", "last", "--task", "nope", expect=2)
    assert_usage_error(bad, 2, "no task run 'nope'", "load-0")
    assert_usage_error(project.orch("logs", "last", "-n", "0", expect=2), 2)


def test_orch_version_prints_what_dash_dash_version_prints(project: Project) -> None:
    assert project.orch("version").stdout == project.orch("--version").stdout
    assert project.orch("version").stdout.startswith("orch ")
