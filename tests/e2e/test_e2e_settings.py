"""Prefect's settings under orchlite's names, through the real `orch` command.

ORCH_RESULTS_PERSIST_BY_DEFAULT (or `[results] persist_by_default` in orch.toml) turns result
persistence, and so caching, on for every task, as PREFECT_RESULTS_PERSIST_BY_DEFAULT does;
ORCH_LOGGING_LEVEL sets the run log level as PREFECT_LOGGING_LEVEL does (default INFO).
"""

from __future__ import annotations

import subprocess

from tests.helpers import Project

FLOWS = """
from pathlib import Path

from orchlite import flow, get_run_logger, task


@task
def send(to: str) -> str:
    bump("send.count")
    return to


@task
def check(n: int) -> int:
    if not Path("fixed").exists():
        raise RuntimeError("not fixed yet")
    return n


@flow
def notify() -> int:
    return len([send("ops") for _ in range(5)])


@flow
def flaky() -> int:
    sent = [send("ops") for _ in range(3)]
    return len(sent) + check(1)


@flow
def broken() -> None:
    raise ValueError("bad row 7")


@flow
def chatty() -> None:
    log = get_run_logger()
    log.debug("debug line")
    log.info("info line")
"""


def orch_with(
    project: Project, env: dict[str, str], *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` with `env` added to the project's environment."""
    return project.orch(*args, extra_env=env, expect=expect)


def task_states(project: Project) -> list[str]:
    return [t["state"] for t in project.show()["tasks"]]


def test_identical_calls_execute_every_time_by_default(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:notify")
    assert project.count("send.count") == 5
    assert task_states(project) == ["COMPLETED"] * 5
    assert project.json("cache", "ls", "--json") == []


def test_the_persist_setting_caches_identical_calls_in_a_run(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    orch_with(project, {"ORCH_RESULTS_PERSIST_BY_DEFAULT": "true"}, "run", "flows.py:notify")
    assert project.count("send.count") == 1
    assert task_states(project) == ["COMPLETED"] + ["CACHED"] * 4


def test_the_persist_setting_in_orch_toml(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.write("orch.toml", "[results]\npersist_by_default = true\n")
    project.orch("run", "flows.py:notify")
    assert project.count("send.count") == 1


def test_a_bad_persist_setting_is_one_line_and_no_run(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = orch_with(
        project, {"ORCH_RESULTS_PERSIST_BY_DEFAULT": "sure"}, "run", "flows.py:notify", expect=2
    )
    assert proc.stderr.splitlines() == [
        "error: ORCH_RESULTS_PERSIST_BY_DEFAULT must be true or false, not 'sure'"
    ]
    assert project.count("send.count") == 0
    assert project.runs() == []


def test_retry_resumes_completed_tasks_without_caching(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:flaky", expect=1)
    assert project.count("send.count") == 3  # identical calls: each one executed
    failed = project.show()
    (project.root / "fixed").touch()
    project.orch("retry", failed["id"])
    assert project.count("send.count") == 3  # answered from the failed run
    tasks = project.show()["tasks"]
    assert [t["state"] for t in tasks] == ["CACHED"] * 3 + ["COMPLETED"]
    assert {t["message"] for t in tasks[:3]} == {f"resumed from {failed['id']}"}


def test_debug_records_are_dropped_at_the_default_level(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = project.orch("run", "flows.py:chatty")
    assert "info line" in proc.stderr
    assert "debug line" not in proc.stderr
    logs = project.orch("logs", "last").stdout
    assert "info line" in logs
    assert "debug line" not in logs


def test_a_flow_traceback_is_stored_at_error_and_not_printed(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = project.orch("run", "flows.py:broken", expect=1)
    assert "Finished in state Failed: ValueError: bad row 7" in proc.stderr
    assert "Traceback" not in proc.stderr
    errors = project.orch("logs", "last", "--level", "error").stdout
    assert "Encountered exception during execution:" in errors
    assert 'raise ValueError("bad row 7")' in errors


def test_orch_logging_level_debug_stores_and_prints_debug_records(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = orch_with(project, {"ORCH_LOGGING_LEVEL": "debug"}, "run", "flows.py:chatty")
    assert "DEBUG   | Flow run" in proc.stderr and "debug line" in proc.stderr
    logs = project.orch("logs", "last").stdout.splitlines()
    assert [line.split(" - ", 1)[1] for line in logs if " - " in line][:2] == [
        "debug line",
        "info line",
    ]


def test_orch_logging_level_warning_drops_info_records(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    orch_with(project, {"ORCH_LOGGING_LEVEL": "WARNING"}, "run", "flows.py:chatty")
    logs = project.orch("logs", "last").stdout
    assert "info line" not in logs and "debug line" not in logs


def test_a_bad_logging_level_is_one_line_and_no_run(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = orch_with(project, {"ORCH_LOGGING_LEVEL": "LOUD"}, "run", "flows.py:chatty", expect=2)
    assert proc.stderr.splitlines() == [
        "error: ORCH_LOGGING_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'"
    ]
    assert project.runs() == []
