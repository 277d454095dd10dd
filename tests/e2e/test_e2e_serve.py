"""`flow.serve(...)` and `orchlite.serve(...)`: a flow file run with plain `python` serves
its schedules in the foreground, each run recorded in `.orch/`, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers import Project, wait_for

FLOWS = """
import sys

from orchlite import flow, serve
from orchlite.runtime import deployment


@flow
def ping(n: int = 1) -> str:
    return f"{deployment.name}:{n}"


@flow
def pong() -> str:
    return f"{deployment.name}"


if __name__ == "__main__":
    if sys.argv[1] == "one":
        ping.serve(name="fast-ping", interval=1, parameters={"n": 7})
    elif sys.argv[1] == "two":
        serve(
            ping.to_deployment(name="pings", interval=1),
            pong.to_deployment(name="pongs", cron="* * * * *", interval=1),
            limit=2,
        )
    else:
        ping.serve(name="nothing")
"""


def serving(project: Project, which: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "flows.py", which],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_flow_serve_runs_its_schedule_until_sigterm(project: Project) -> None:
    project.write("flows.py", FLOWS)
    proc = serving(project, "one")
    try:
        done = wait_for(
            lambda: [r for r in project.recorded() if r["state"] == "COMPLETED"][:2],
            timeout=30,
            what="two served runs",
        )
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Serving 'ping' as 'fast-ping': every 1s" in err
    for run in done:
        shown = project.show(run["id"])
        assert (shown["flow"], shown["trigger"]) == ("ping", "schedule")
        assert shown["parameters"] == {"n": 7}
        assert shown["result"] == "'fast-ping:7'"


@pytest.mark.slow
def test_orchlite_serve_serves_several_flows(project: Project) -> None:
    project.write("flows.py", FLOWS)
    proc = serving(project, "two")
    try:
        wait_for(
            lambda: (
                {r["flow"] for r in project.recorded() if r["state"] == "COMPLETED"}
                >= {"ping", "pong"}
            ),
            timeout=30,
            what="runs of both flows",
        )
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    completed = [r for r in project.recorded() if r["state"] == "COMPLETED"]
    results = {project.show(r["id"])["result"] for r in completed}
    assert {"'pings:1'", "'pongs'"} <= results


def test_serving_nothing_is_one_clear_error(project: Project) -> None:
    project.write("flows.py", FLOWS)
    proc = serving(project, "nothing")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "nothing to serve for flow 'ping': give cron=, interval= or schedules=" in err
