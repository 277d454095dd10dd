"""A paused run through the CLI: `orch runs` shows it PAUSED, `orch resume` checks the input
against the flow's model and resumes it, `orch cancel` ends one that is waiting."""

from __future__ import annotations

import pytest

from tests.helpers import Project, assert_usage_error, wait_for

FLOWS = """
from orchlite import flow, pause_flow_run
from orchlite.input import RunInput


class Approval(RunInput):
    approved: bool
    reviewer: str


@flow
def release(version: str = "2.0") -> str:
    answer = pause_flow_run(wait_for_input=Approval, timeout=120)
    return f"{version} approved={answer.approved} by {answer.reviewer}"
"""


@pytest.fixture
def project(project: Project) -> Project:
    project.write("flows.py", FLOWS)
    return project


def paused(project: Project) -> str:
    runs = wait_for(
        lambda: [r for r in project.recorded() if r["state"] == "PAUSED"], what="a PAUSED run"
    )
    return str(runs[0]["id"])


def test_orch_resume_checks_the_input_and_the_run_goes_on(project: Project) -> None:
    proc = project.popen("run", "flows.py:release")
    try:
        run_id = paused(project)
        bad = project.orch("resume", run_id[:8], "-p", "approved=yes", expect=2)
        assert_usage_error(bad, 2, "refused the input", "reviewer: Field required")
        unknown = project.orch("resume", "last", "--input", '{"approved": true, "x": 1}', expect=2)
        assert_usage_error(unknown, 2, "x: Extra inputs are not permitted")
        project.orch("resume", run_id, "-p", "approved=true", "-p", "reviewer=ada")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    shown = project.show(run_id)
    assert shown["state"] == "COMPLETED"
    assert shown["result"] == "'2.0 approved=True by ada'"
    assert [h["state"] for h in shown["history"]][-3:] == ["PAUSED", "RUNNING", "COMPLETED"]
    again = project.orch("resume", run_id, expect=2)
    assert_usage_error(again, 2, "is COMPLETED, not PAUSED")


def test_a_paused_run_can_be_cancelled(project: Project) -> None:
    proc = project.popen("run", "flows.py:release")
    try:
        run_id = paused(project)
        project.orch("cancel", run_id)
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert project.show(run_id)["state"] == "CANCELLED"
