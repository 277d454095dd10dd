"""`async def` flows through the CLI: `orch run` runs them in the foreground and in a child
process, their async tasks reach a process pool, and a failure is the run's exit code."""

from __future__ import annotations

import pytest

from tests.helpers import Project

FLOWS = """
import asyncio

from orchlite import flow, task
from orchlite.task_runners import ProcessPoolTaskRunner


@task(retries=1, retry_delay_seconds=0)
async def fetch(n: int) -> int:
    await asyncio.sleep(0.01)
    bump("fetch.count")
    return n * 2


@task
def total(values: list[int]) -> int:
    return sum(values)


@flow
async def gather_all(count: int = 3) -> int:
    values = await asyncio.gather(*[fetch(n) for n in range(count)])
    return total(list(values))


@flow
async def broken() -> None:
    await fetch(1)
    raise RuntimeError("the upstream API is down")


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
async def in_processes() -> list[int]:
    return fetch.map([1, 2, 3]).result()


if __name__ == "__main__":
    print(asyncio.run(gather_all(2)))
"""


@pytest.fixture
def project(project: Project) -> Project:
    project.write_flow("flows.py", FLOWS)
    return project


def test_orch_run_runs_an_async_flow_and_records_its_tasks(project: Project) -> None:
    project.orch("run", "flows.py:gather_all", "-p", "count=4")
    shown = project.show()
    assert shown["state"] == "COMPLETED"
    assert shown["result"] == "12"
    names = sorted(t["name"] for t in shown["tasks"])
    assert names == ["fetch-0", "fetch-1", "fetch-2", "fetch-3", "total-0"]
    assert project.count("fetch.count") == 4


def test_a_failing_async_flow_fails_the_run_with_exit_1(project: Project) -> None:
    proc = project.orch("run", "flows.py:broken", expect=1)
    assert "the upstream API is down" in proc.stderr
    shown = project.show()
    assert shown["state"] == "FAILED"
    assert [t["state"] for t in shown["tasks"]] == ["COMPLETED"]


@pytest.mark.slow
def test_async_flows_run_in_a_child_process_and_send_async_tasks_to_processes(
    project: Project,
) -> None:
    project.orch("run", "flows.py:gather_all", "--subprocess")
    assert project.show()["state"] == "COMPLETED"
    project.orch("run", "flows.py:in_processes")
    shown = project.show()
    assert shown["state"] == "COMPLETED"
    assert shown["result"] == "[2, 4, 6]"


def test_an_async_flow_file_runs_with_plain_python(project: Project) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "flows.py"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "2"
    assert project.runs()[0]["state"] == "COMPLETED"
