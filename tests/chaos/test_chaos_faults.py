"""Kill at every commit point: each point of `orchlite.faults.POINTS`, crashed exactly there.

The points are listed from the module, so a new one is covered without touching this file:
it runs through the flow scenario (`orch run` of the harness's flow), and fails there if
that never reaches it, until it gets a scenario of its own. After each crash the harness's
invariants must hold, and resuming (`orch retry`, or a restarted daemon) must execute exactly
the work that was not committed.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaos_harness import (
    TASKS,
    check_acknowledged,
    check_executions,
    check_store,
    new_project,
    open_store,
    payload,
    read_ints,
    read_lines,
    resumed_tasks,
    start_orch,
    top_level_runs,
    wait_quiet,
)

from orchlite import faults, serialize
from orchlite.blobs import BlobStore
from tests.helpers import Project, describe, wait_for

pytestmark = pytest.mark.chaos

KILLED = -signal.SIGKILL

# Where the flow scenario crashes (`point:nth`), and how many of its tasks are committed
# completed at that instant (tasks 0, 3, 6, ... have blob results). The first RUNNING row
# written is normally task 20's, the one long task, but a machine busy enough to stall a quick
# task for 0.2 s gets that one's written first: that count is not fixed.
FLOW_CRASHES: dict[str, tuple[int, int | None]] = {
    "run_created": (1, 0),
    "run_started": (1, 0),
    "task_started": (1, None),
    "blob_temp_written": (2, 3),
    "blob_written": (2, 3),
    "task_result_recorded": (5, 5),
    "run_finished": (1, TASKS),
}


def run_orch(
    project: Project, *args: str, fault: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in the project, killed at the fault point `fault` if given."""
    extra = {faults.ENV: fault} if fault is not None else None
    return project.orch(*args, expect=None, timeout=timeout, extra_env=extra)


def assert_invariants(project: Project) -> None:
    problems = check_store(project)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("point", sorted(faults.POINTS))
def test_a_crash_at_each_commit_point_loses_nothing_committed(point: str, tmp_path: Path) -> None:
    scenario = DAEMON_SCENARIOS.get(point, crash_a_flow_run)
    scenario(new_project(tmp_path), point)


def crash_a_flow_run(project: Project, point: str) -> None:
    """`orch run` crashes at `point`; `orch retry` then executes exactly what was not
    committed."""
    nth, committed = FLOW_CRASHES.get(point, (1, None))
    crashed = run_orch(project, "run", "flows.py:many", fault=f"{point}:{nth}")
    assert crashed.returncode == KILLED, (
        f"`orch run` never reached the fault point {point!r}: give it a scenario here\n"
        + describe(crashed)
    )
    runs = top_level_runs(project)
    assert len(runs) == 1, runs
    (run_id,) = runs
    acked = read_ints(project.root / "ack.log")
    executed = read_ints(project.root / "exec.log")
    problems = check_acknowledged(project, run_id, acked)
    problems += check_executions(project, run_id, {}, executed, finished=False)
    assert not problems, "\n".join(problems)
    assert_invariants(project)

    done = resumed_tasks(project, run_id)
    assert sorted(done) == list(range(len(done))), f"{point}: committed {sorted(done)}"
    if committed is not None:
        assert len(done) == committed, f"{point}: committed {sorted(done)}"
    if point == "task_started":
        # The crash came right after the RUNNING row of the next task: reaping ended it.
        store = open_store(project)
        assert store is not None
        with store:
            states = {t.position: t.state for t in store.task_runs(run_id)}
        assert states.get(len(done)) == "CRASHED", states
    assert set(acked) <= set(done) and len(set(done) - set(acked)) <= 1
    state = top_level_runs(project)[run_id]
    assert state == ("COMPLETED" if point == "run_finished" else "CRASHED"), state
    if point.startswith("blob_"):
        _check_the_interrupted_blob(project, point)

    for name in ("exec.log", "ack.log"):
        (project.root / name).unlink(missing_ok=True)
    extra = ["--force"] if state == "COMPLETED" else []
    resumed = run_orch(project, "retry", run_id, *extra)
    assert resumed.returncode == 0, describe(resumed)
    executed = read_ints(project.root / "exec.log")
    (retry_id,) = set(top_level_runs(project)) - {run_id}
    problems = check_executions(project, retry_id, done, executed, finished=True)
    assert not problems, "\n".join(problems)
    assert sorted(executed) == sorted(set(range(TASKS)) - set(done))
    assert sorted(read_ints(project.root / "ack.log")) == list(range(TASKS))
    store = open_store(project)
    assert store is not None
    with store:
        cached = [t.position for t in store.task_runs(retry_id) if t.state == "CACHED"]
        assert store.get_flow_run(retry_id).state == "COMPLETED"
    assert cached == sorted(done)
    assert_invariants(project)


def _check_the_interrupted_blob(project: Project, point: str) -> None:
    """The blob of task 3 was being written: its temporary file is left (before the rename)
    or its final file is whole (after it); no row references it either way."""
    blobs = BlobStore(project.home / "blobs")
    digest = hashlib.sha256(serialize.dumps(payload(3), "cloudpickle")).hexdigest()
    store = open_store(project)
    assert store is not None
    with store:
        assert digest not in {ref for _, _, ref in store.blob_references()}
    temps = list((project.home / "blobs").glob("*/.tmp-*"))
    if point == "blob_temp_written":
        assert not blobs.path(digest).exists()
        assert len(temps) == 1 and temps[0].parent.name == digest[:2]
    else:
        assert blobs.path(digest).exists() and not temps


def test_a_crash_in_a_supervised_child_is_recorded_by_its_parent(tmp_path: Path) -> None:
    """`orch run --subprocess`: the child dies at a commit point; the parent, not a later
    reaper, records the run CRASHED, and `orch retry` skips the committed tasks."""
    project = new_project(tmp_path)
    crashed = run_orch(
        project, "run", "--subprocess", "flows.py:many", fault="task_result_recorded:5"
    )
    assert crashed.returncode == 1, describe(crashed)
    (run_id,) = top_level_runs(project)
    assert_invariants_without_reaping(project)
    store = open_store(project)
    assert store is not None
    with store:
        run = store.get_flow_run(run_id)
    assert run.state == "CRASHED" and "SIGKILL" in (run.state_message or ""), run
    done = resumed_tasks(project, run_id)
    assert sorted(done) == list(range(5))
    (project.root / "exec.log").unlink()
    resumed = run_orch(project, "retry", run_id, "--subprocess")
    assert resumed.returncode == 0, describe(resumed)
    assert sorted(read_ints(project.root / "exec.log")) == list(range(5, TASKS))
    assert_invariants(project)


def assert_invariants_without_reaping(project: Project) -> None:
    problems = check_store(project, reap=False)
    assert not problems, "\n".join(problems)


# -- the daemon's commit points -------------------------------------------------------------


def start_daemon(project: Project, fault: str | None = None) -> subprocess.Popen[bytes]:
    env = project.env
    if fault is not None:
        env[faults.ENV] = fault
    return start_orch(project, "daemon", "--tick", "0.2", env=env)


def expect_crash(
    project: Project, daemon: subprocess.Popen[bytes], point: str, timeout: float = 60.0
) -> None:
    """The daemon dies at `point`; then its runs in flight, orphans now, end."""
    try:
        code = daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        pytest.fail(f"the daemon never reached the fault point {point!r}")
    assert code == KILLED, f"the daemon exited {code}, not at the fault point {point!r}"
    wait_quiet(project)


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        pytest.fail("the daemon did not stop on SIGTERM")


def flow_runs(project: Project, **match: Any) -> list[Any]:
    store = open_store(project)
    if store is None:
        return []
    with store:
        runs = store.list_flow_runs(limit=100_000)
    return [r for r in runs if all(getattr(r, k) == v for k, v in match.items())]


def run_once_after_restart(project: Project, run_id: str, log: str) -> None:
    """A restarted daemon runs the claimed run `run_id`, once; nothing is claimed twice."""
    daemon = start_daemon(project)
    try:
        wait_for(
            lambda: flow_runs(project, id=run_id, state="COMPLETED"),
            timeout=60,
            what=f"run {run_id[:8]} to complete after the restart",
        )
    finally:
        stop(daemon)
    wait_quiet(project)
    assert_invariants(project)
    executions = Counter(read_lines(project.root / log))
    assert executions[run_id] == 1, executions
    assert max(executions.values()) == 1, executions


def crash_claiming_a_slot(project: Project, point: str) -> None:
    expect_crash(project, start_daemon(project, fault=point), point)
    (claimed,) = flow_runs(project, trigger="schedule")
    assert claimed.state == "SCHEDULED"
    assert not read_lines(project.root / "daemon-exec.log")
    assert_invariants(project)
    run_once_after_restart(project, claimed.id, "daemon-exec.log")


def crash_claiming_a_trigger_run(project: Project, point: str) -> None:
    daemon = start_daemon(project, fault=point)

    def trigger_seen() -> bool:
        store = open_store(project)
        if store is None:
            return False
        with store:
            marks = store.conn.execute("SELECT key FROM schedule_marks").fetchall()
        return any(key.endswith("|since") for (key,) in marks)

    try:
        wait_for(trigger_seen, timeout=60, what="the daemon to load the flow trigger")
    except BaseException:
        daemon.kill()
        daemon.wait()
        raise
    upstream = run_orch(project, "run", "flows.py:many", "-p", "n=2")
    assert upstream.returncode == 0, describe(upstream)
    expect_crash(project, daemon, point)
    (claimed,) = flow_runs(project, flow_name="after-many")
    assert claimed.state == "SCHEDULED" and claimed.trigger == "flow"
    assert_invariants(project)
    run_once_after_restart(project, claimed.id, "trigger-exec.log")
    assert len(flow_runs(project, trigger="flow")) == 1


CRASHY = """
import os
import signal
from pathlib import Path

from orchlite import flow, get_run_context, interval


@flow(retries=1, retry_delay_seconds=0, schedules=[interval(seconds=1)])
def crashy():
    with open("crashy-exec.log", "a") as fh:
        fh.write(get_run_context().run_id + "\\n")
    if not Path("crashed-once").exists():
        Path("crashed-once").touch()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def crash_claiming_a_retry(project: Project, point: str) -> None:
    project.write("crashy.py", textwrap.dedent(CRASHY))
    expect_crash(project, start_daemon(project, fault=point), point)
    (crashed,) = flow_runs(project, flow_name="crashy", trigger="schedule", state="CRASHED")
    (retry,) = flow_runs(project, retry_of=crashed.id)
    assert retry.state == "SCHEDULED" and retry.trigger == "retry"
    assert_invariants(project)
    run_once_after_restart(project, retry.id, "crashy-exec.log")
    assert len(flow_runs(project, retry_of=crashed.id)) == 1


DAEMON_SCENARIOS: dict[str, Callable[[Project, str], None]] = {
    "slot_claimed": crash_claiming_a_slot,
    "trigger_run_claimed": crash_claiming_a_trigger_run,
    "retry_run_claimed": crash_claiming_a_retry,
}


def test_every_fault_point_is_in_the_store_or_blob_layer() -> None:
    """Each listed point is placed in the store or the blob layer."""
    root = Path(faults.__file__).parent
    files = [*sorted((root / "store").glob("*.py")), root / "blobs.py"]
    source = "".join(path.read_text() for path in files)
    for point in faults.POINTS:
        assert f'"{point}"' in source, f"{point} is listed but placed nowhere"
