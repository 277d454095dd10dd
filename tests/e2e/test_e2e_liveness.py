"""A live run is never taken for dead, a dead one never for live, and nothing outlives its run.

Stalls are real: the process running the flow is stopped with SIGSTOP and resumed with
SIGCONT. Only the passing of the stall's minutes is simulated, by moving the run's last
heartbeat back, as a clock jump or a suspended machine would leave it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from orchlite.processes import pid_alive
from orchlite.states import TERMINAL
from tests.helpers import Project, assert_usage_error, finish, wait_for

STALLS = """
import os
import time
from pathlib import Path

from orchlite import flow, task


@task
def step(i: int) -> int:
    bump(f"step{i}.count")
    return i


@flow
def stall():
    step(0)
    Path("task.pid").write_text(str(os.getpid()))
    while not Path("go").exists():
        time.sleep(0.02)
    step(1)
    step(2)
"""

TERMINAL_NAMES = {s.value for s in TERMINAL}


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2 :][:1] == b"T"


def _lines_of(stream: IO[str] | None) -> list[str]:
    """The lines `stream` gives, collected by a thread as they come."""
    lines: list[str] = []

    def collect() -> None:
        assert stream is not None
        for line in stream:
            lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    return lines


def _age_heartbeat(project: Project, seconds: float, host: str | None = None) -> None:
    """As if the run had not been heard of for `seconds` (and, with `host`, ran there)."""
    store = project.store()
    try:
        with store.transaction() as conn:
            conn.execute("UPDATE flow_runs SET heartbeat = heartbeat - ?", (seconds,))
            if host is not None:
                conn.execute("UPDATE flow_runs SET host = ?", (host,))
    finally:
        store.close()


def test_a_run_stopped_for_minutes_on_its_host_is_not_crashed(project: Project) -> None:
    project.write_flow("flows.py", STALLS)
    runner = project.popen("run", "flows.py:stall")
    pid = project.read_pid()
    assert pid == runner.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _stopped(pid), what="the run's process to stop")
        _age_heartbeat(project, 400)
        [run] = project.runs()  # `orch runs` reaps the runs it finds dead
        assert run["state"] == "RUNNING"
        (project.root / "go").touch()
    finally:
        os.kill(pid, signal.SIGCONT)
    _, err = finish(runner)
    assert runner.returncode == 0, err
    detail = project.show()
    assert detail["state"] == "COMPLETED"
    assert [t["state"] for t in detail["tasks"]] == ["COMPLETED"] * 3
    assert [project.count(f"step{i}.count") for i in range(3)] == [1, 1, 1]


def test_a_run_crashed_while_its_host_stalled_stops_when_it_resumes(project: Project) -> None:
    """Terminal states are final: the late process records nothing and says why it stops."""
    project.write_flow("flows.py", STALLS)
    runner = project.popen("run", "flows.py:stall")
    pid = project.read_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _stopped(pid), what="the run's process to stop")
        _age_heartbeat(project, 400, host="a-host-that-stalled")
        [run] = project.runs()
        assert run["state"] == "CRASHED"
        assert "no heartbeat from a-host-that-stalled" in run["message"]
    finally:
        os.kill(pid, signal.SIGCONT)
    lines = _lines_of(runner.stderr)
    wait_for(lambda: "ended CRASHED by another process" in "".join(lines), what="the stop line")
    (project.root / "go").touch()
    assert runner.wait(timeout=30) == 1, "".join(lines)
    logs = project.orch("logs", "last").stdout
    assert "ended CRASHED by another process (no heartbeat from a-host-that-stalled" in logs
    assert "Not recorded: this process ended the run Cancelled" in logs
    detail = project.show()
    assert detail["state"] == "CRASHED"
    assert [t["state"] for t in detail["tasks"]] == ["COMPLETED"]
    assert [project.count(f"step{i}.count") for i in range(3)] == [1, 0, 0]


GROUP = """
import os
import subprocess
import sys
import time
from pathlib import Path

from orchlite import flow, task

DEAF = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " open('grandchild.pid', 'w').write(str(os.getpid())); time.sleep(3600)"
)


@task
def wait_forever():
    while True:
        time.sleep(0.05)


@flow
def spawner():
    subprocess.Popen([sys.executable, "-c", DEAF])
    while not Path("grandchild.pid").exists():
        time.sleep(0.02)
    futures = [wait_forever.submit() for _ in range(2)]
    Path("task.pid").write_text(str(os.getpid()))
    for future in futures:
        future.wait()
"""


def test_cancel_kills_the_whole_process_group_and_ends_its_task_runs(project: Project) -> None:
    project.write_flow("flows.py", GROUP)
    # Not pipes: a grandchild left alive would hold them open.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    runner = project.popen("run", "--subprocess", "flows.py:spawner", **quiet)
    project.read_pid()
    grandchild = project.read_pid("grandchild.pid")
    try:
        project.orch("cancel", "last")
        assert runner.wait(timeout=30) == 1
        wait_for(lambda: not pid_alive(grandchild), timeout=10, what="the grandchild to die")
    finally:
        if pid_alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
    detail = project.show()
    assert detail["state"] == "CANCELLED"
    assert len(detail["tasks"]) == 2
    for task in detail["tasks"]:
        assert task["state"] == "CANCELLED", task
    assert "healthy" in project.orch("doctor").stdout.splitlines()[-1]


def test_doctor_ends_task_runs_left_unfinished_under_an_ended_run(project: Project) -> None:
    project.write_flow("flows.py", STALLS)
    (project.root / "go").touch()
    project.orch("run", "flows.py:stall")
    store = project.store()
    try:
        with store.transaction() as conn:  # as an older orchlite left a timed-out run
            conn.execute("UPDATE flow_runs SET state = 'TIMED_OUT'")
            conn.execute("UPDATE task_runs SET state = 'RUNNING' WHERE position = 1")
    finally:
        store.close()
    out = project.orch("doctor").stdout
    assert "task run step-1 of flow run" in out
    assert "was still RUNNING though its flow run ended TIMED_OUT; ended it CANCELLED" in out
    assert "1 problem(s) found, 1 repaired" in out
    tasks = project.show()["tasks"]
    assert [t["state"] for t in tasks] == ["COMPLETED", "CANCELLED", "COMPLETED"]
    assert "ended by orch doctor" in tasks[1]["message"]
    assert "healthy" in project.orch("doctor").stdout.splitlines()[-1]


RETRIED = """
import time
from pathlib import Path

from orchlite import flow, task


@task
def first() -> int:
    bump("first.count")
    return 1


@task
def second() -> int:
    bump("second.count")
    if not Path("fixed").exists():
        raise ValueError("not fixed yet")
    Path("second.started").write_text("1")
    while not Path("go").exists():
        time.sleep(0.02)
    return 2


@flow
def pipeline():
    first()
    second()


@flow
def inner() -> int:
    return first()


@flow
def outer():
    if Path("fixed").exists():
        Path("outer.started").write_text("1")
        while not Path("go").exists():
            time.sleep(0.02)
    inner()
    if not Path("fixed").exists():
        raise ValueError("not fixed yet")
"""


def test_two_retries_of_one_run_at_once_run_it_once(project: Project) -> None:
    project.write_flow("flows.py", RETRIED)
    project.orch("run", "flows.py:pipeline", expect=1)
    failed = project.show()["id"]
    (project.root / "fixed").touch()
    winner = project.popen("retry", failed)
    wait_for(lambda: (project.root / "second.started").exists(), what="the first retry")
    retry_id = next(r["id"] for r in project.runs() if r["id"] != failed)
    loser = project.orch("retry", failed, expect=None)
    line = assert_usage_error(loser, 2, f"run {failed[:8]} is already being retried")
    assert retry_id[:8] in line
    (project.root / "go").touch()
    _, err = finish(winner)
    assert winner.returncode == 0, err
    assert len(project.runs()) == 2
    assert (project.count("first.count"), project.count("second.count")) == (1, 2)


def test_gc_during_a_retry_keeps_what_it_resumes_from(project: Project) -> None:
    project.write_flow("flows.py", RETRIED)
    project.orch("run", "flows.py:outer", expect=1)
    (project.root / "fixed").touch()
    retry = project.popen("retry", "last")
    wait_for(lambda: (project.root / "outer.started").exists(), what="the retry to start")
    gc = project.orch("gc", "--older-than", "0s")
    assert "deleted 0 run(s)" in gc.stderr
    (project.root / "go").touch()
    _, err = finish(retry)
    assert retry.returncode == 0, err
    assert project.count("first.count") == 1  # answered from the retried run's subflow
    assert project.show()["state"] == "COMPLETED"
    project.orch("gc", "--older-than", "0s")
    assert [r["state"] for r in project.runs()] == []


def test_a_run_that_ends_itself_is_not_told_it_was_ended_elsewhere(project: Project) -> None:
    """The recorder polls while the completion hook runs: the end it sees is the run's own."""
    project.write_flow(
        "flows.py",
        """
        import time

        from orchlite import flow


        def linger(flow, run, state):
            time.sleep(1.5)  # three polls of the run's state


        @flow(on_completion=[linger])
        def quick():
            return 1
        """,
    )
    done = project.orch("run", "flows.py:quick")
    assert "another process" not in done.stderr
    assert "Not recorded" not in done.stderr
    assert "another process" not in project.orch("logs", "last").stdout
