"""A paused run survives a daemon restart: the stopping daemon suspends it (PAUSED, no
process), `orch resume` leaves the request on it, and the next daemon starts it again under
the same run id, answering completed tasks from their results and earlier pauses from their
recorded input."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests import helpers
from tests.helpers import Project, wait_for

FLOWS = """
from orchlite import flow, pause_flow_run, task
from orchlite.input import RunInput


class Approval(RunInput):
    approved: bool


@task(persist_result=True)
def build(version: str) -> str:
    with open("builds.log", "a") as log:
        log.write(version + "\\n")
    return f"artifact-{version}"


@task
def release(artifact: str, approved: bool) -> str:
    return f"{artifact} released={approved}"


@flow
def deploy(version: str = "2.0") -> str:
    artifact = build(version)
    pause_flow_run(key="review", timeout=600)
    answer = pause_flow_run(wait_for_input=Approval, timeout=600)
    return release(artifact, answer.approved)
"""

TRIGGER = """
[[trigger]]
target = "flows.py:deploy"
watch = ["inbox/*"]
debounce = 0.1
"""

GRACE = 60.0
"""Long, so that a daemon that waited for its paused run instead of suspending it would
show: the test stops each daemon well within it."""


@pytest.fixture
def project(project: Project) -> Project:
    project.write("flows.py", FLOWS)
    project.write("orch.toml", TRIGGER)
    (project.root / "inbox").mkdir()
    return project


def start_daemon(project: Project) -> subprocess.Popen[str]:
    """`orch daemon`, once it watches the project (its log goes to daemon.log)."""
    log = project.root / "daemon.log"
    loaded = log.read_text().count("loaded") if log.exists() else 0
    daemon = helpers.start_daemon(project.root, grace=GRACE, env=project.env)
    wait_for(lambda: log.read_text().count("loaded") > loaded, what="the daemon to start")
    return daemon


def stop_daemon(daemon: subprocess.Popen[str]) -> float:
    """SIGTERM the daemon; how long it took to exit (it must exit 0)."""
    began = time.monotonic()
    helpers.stop_daemon(daemon, timeout=GRACE / 2)
    return time.monotonic() - began


def trigger_a_paused_run(project: Project) -> str:
    """Drop a file for the trigger; the id of the run once it waits at its first pause."""
    (project.root / "inbox" / "go").write_text("")
    return str(
        wait_for(
            lambda: next((r["id"] for r in project.recorded() if r["state"] == "PAUSED"), None),
            what="the run to pause",
        )
    )


def paused_times(project: Project, run_id: str) -> int:
    return [h["state"] for h in project.show(run_id)["history"]].count("PAUSED")


@pytest.mark.slow  # two daemons, three processes of one run
def test_a_paused_run_survives_a_daemon_restart(project: Project) -> None:
    daemon = start_daemon(project)
    try:
        run_id = trigger_a_paused_run(project)
        project.orch("resume", run_id)  # the first pause ("review") is answered in process
        wait_for(lambda: paused_times(project, run_id) == 2, what="the second pause")
    finally:
        took = stop_daemon(daemon)
    assert took < GRACE / 2  # suspended at once, not waited for

    suspended = project.show(run_id)
    assert suspended["state"] == "PAUSED"
    assert "suspended" in suspended["message"]
    project.orch("runs")  # any command reaps dead runs: a suspended one is not dead
    assert project.show(run_id)["state"] == "PAUSED"

    said = project.orch("resume", run_id[:10], "-p", "approved=true")
    assert "orch daemon starts it again" in said.stderr
    assert project.show(run_id)["state"] == "PAUSED"  # until a daemon takes it

    daemon = start_daemon(project)
    try:
        wait_for(
            lambda: project.show(run_id)["state"] == "COMPLETED",
            timeout=60,
            what="the resumed run to complete",
        )
    finally:
        stop_daemon(daemon)
    done = project.show(run_id)
    assert done["result"] == "'artifact-2.0 released=True'"
    assert (project.root / "builds.log").read_text() == "2.0\n"  # build ran once
    states = [h["state"] for h in done["history"]]
    assert states[-4:] == ["PAUSED", "PENDING", "RUNNING", "COMPLETED"]
    assert len([r for r in project.recorded() if r["flow"] == "deploy"]) == 1


@pytest.mark.slow  # a daemon's start and stop
def test_a_suspended_run_can_be_cancelled(project: Project) -> None:
    daemon = start_daemon(project)
    try:
        run_id = trigger_a_paused_run(project)
    finally:
        stop_daemon(daemon)
    assert project.show(run_id)["state"] == "PAUSED"
    project.orch("cancel", run_id)
    cancelled = project.show(run_id)
    assert cancelled["state"] == "CANCELLED"
    assert cancelled["message"] == "cancelled while suspended"
    again = project.orch("resume", run_id, expect=2)
    assert "is CANCELLED, not PAUSED" in again.stderr
