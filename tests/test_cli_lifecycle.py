"""`orch retry`, `orch cancel` and dead-process reaping, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import child_env, start, wait_for
from tests.helpers import orch as run_orch

FLOWS = """
import os
import time
from pathlib import Path

from orchlite import flow, task
from orchlite.task_runners import DaskTaskRunner


@task
def step(i: int) -> int:
    with open("executed.txt", "a") as fh:
        fh.write(f"{i}\\n")
    if i == 3 and not Path("fixed").exists():
        raise RuntimeError("step 3 broke")
    return i


@flow
def pipeline(n: int = 5) -> int:
    return sum(step(i) for i in range(n))


@task
def nap(i: int) -> int:
    Path("pid").write_text(str(os.getpid()))
    with open("started.txt", "a") as fh:
        fh.write(f"{i}\\n")
    time.sleep(0.4)
    return i


@task
def stage(i: int) -> int:
    if i == 3 and not Path("fixed").exists():
        Path("pid").write_text(str(os.getpid()))
        time.sleep(60)
    with open("executed.txt", "a") as fh:
        fh.write(f"{i}\\n")
    return i


@flow
def child(offset: int) -> int:
    return stage(offset) + stage(offset + 1)


@flow
def parent() -> int:
    return child(0) + child(2) + child(4)


@flow(on_cancellation=[lambda f, run, state: Path("hook.txt").write_text(state.name)])
def slow(n: int = 50) -> None:
    for i in range(n):
        nap(i)


ONE_THREAD = {"processes": False, "n_workers": 1, "threads_per_worker": 1}


@flow(
    task_runner=DaskTaskRunner(cluster_kwargs={**ONE_THREAD, "dashboard_address": None}),
    on_cancellation=[lambda f, run, state: Path("hook.txt").write_text(state.name)],
)
def slow_on_dask(n: int = 50) -> None:
    nap.map(range(n)).wait()
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".orch").mkdir()
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.delenv("ORCH_HOME", raising=False)
    return tmp_path


def orch(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in the project, which finds its store from the working directory."""
    return run_orch(project, *args, env=child_env(None))


def show(project: Path, ref: str = "last") -> dict:
    result = orch(project, "show", ref, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_retry_resumes_only_the_tasks_that_did_not_complete(project: Path) -> None:
    failed = orch(project, "run", "flows.py:pipeline")
    assert failed.returncode == 1
    first = show(project)
    assert first["state"] == "FAILED"
    (project / "fixed").touch()
    (project / "executed.txt").write_text("")
    resumed = orch(project, "retry", first["id"][:10])
    assert resumed.returncode == 0, resumed.stderr
    assert (project / "executed.txt").read_text().split() == ["3", "4"]
    detail = show(project)
    assert detail["retry_of"] == first["id"]
    assert detail["trigger"] == "retry"
    assert [t["state"] for t in detail["tasks"]] == ["CACHED"] * 3 + ["COMPLETED"] * 2
    assert detail["tasks"][0]["message"] == f"resumed from {first['id']}"


def test_retry_refuses_a_completed_run_unless_forced(project: Path) -> None:
    (project / "fixed").touch()
    assert orch(project, "run", "flows.py:pipeline", "-p", "n=2").returncode == 0
    refused = orch(project, "retry", "last")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = orch(project, "retry", "last", "--force", "-p", "n=3")
    assert forced.returncode == 0, forced.stderr
    assert show(project)["parameters"] == {"n": 3}


@pytest.mark.parametrize("ref", ["ffffffff", "zz-not-hex"])
def test_retry_and_cancel_of_unknown_runs_are_bad_input(project: Path, ref: str) -> None:
    (project / "fixed").touch()
    orch(project, "run", "flows.py:pipeline", "-p", "n=1")
    for command in ("retry", "cancel"):
        result = orch(project, command, ref)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "mode"),
    [("slow", []), ("slow", ["--subprocess"]), ("slow_on_dask", [])],
    ids=["in-process", "subprocess", "dask-map"],
)
def test_cancel_stops_a_running_flow(project: Path, target: str, mode: list[str]) -> None:
    running = start(project, "run", f"flows.py:{target}", *mode, env=child_env(None))
    wait_for((project / "started.txt").exists, what="started.txt")
    cancel = orch(project, "cancel", "last")
    assert cancel.returncode == 0, cancel.stderr
    recorded = time.monotonic()  # the run is CANCELLING in the store from here on
    running.wait(timeout=20)
    assert time.monotonic() - recorded < 4
    assert running.returncode == 1
    detail = show(project)
    assert detail["state"] == "CANCELLED"
    started = (project / "started.txt").read_text().split()
    assert len(started) < 10
    if target == "slow":  # one task run at a time: the next one never starts
        assert len(detail["tasks"]) <= len(started) + 1
    assert all(t["state"] != "RUNNING" for t in detail["tasks"])
    assert (project / "hook.txt").read_text() == "Cancelled"
    assert orch(project, "cancel", "last").returncode == 2


def test_a_sigkilled_in_process_run_is_reaped_as_crashed(project: Path) -> None:
    running = start(project, "run", "flows.py:slow", env=child_env(None))
    wait_for((project / "pid").exists, what="pid")
    os.kill(running.pid, signal.SIGKILL)
    running.wait(timeout=10)
    detail = show(project)
    assert detail["state"] == "CRASHED"
    assert "is gone" in detail["message"]
    assert all(t["state"] != "RUNNING" for t in detail["tasks"])


def test_retry_after_sigkill_of_a_subprocess_resumes_subflows_too(project: Path) -> None:
    running = start(project, "run", "flows.py:parent", "--subprocess", env=child_env(None))
    wait_for((project / "pid").exists, what="pid")
    os.kill(int((project / "pid").read_text()), signal.SIGKILL)
    running.wait(timeout=20)
    assert running.returncode == 1
    crashed = show(project)
    assert crashed["state"] == "CRASHED"
    assert "SIGKILL" in crashed["message"]
    assert (project / "executed.txt").read_text().split() == ["0", "1", "2"]
    (project / "fixed").touch()
    resumed = orch(project, "retry", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert (project / "executed.txt").read_text().split() == ["0", "1", "2", "3", "4", "5"]
    detail = show(project)
    assert detail["state"] == "COMPLETED"
    children = [show(project, c["id"]) for c in detail["children"]]
    states = [[t["state"] for t in c["tasks"]] for c in children]
    assert states == [["CACHED", "CACHED"], ["CACHED", "COMPLETED"], ["COMPLETED", "COMPLETED"]]
