"""The crash harness: a flow of many small tasks, side files, and the invariants checked
after every kill.

The flow (`FLOW_SOURCE`, written into a temporary project) runs `step(i)` for i in
0..n-1. Each task body appends `i` to `exec.log` before it returns (one line per
execution); the flow, once `step(i)` has returned (so the store has recorded it), appends `i`
to `ack.log` and fsyncs it. A line in `ack.log` is therefore a completion the process
acknowledged, and must survive any kill. Every third result is larger than the inline limit,
so it goes through the blob store; one task (20) runs until the store shows it RUNNING, as
a long task would.

`check_store` verifies what must hold after any kill, whichever process died:

- `PRAGMA integrity_check` is ok;
- every row that references a blob references a whole one (present, content matching its
  sha256), and every result recorded completed is readable and equal to what the task
  returned;
- after reaping (what every `orch` command does first), no flow run is RUNNING, PENDING or
  CANCELLING and no task run is RUNNING or PENDING;
- no schedule slot (key, slot) has two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchlite import results
from orchlite.blobs import BlobStore
from orchlite.processes import pid_alive
from orchlite.stopping import reap_dead_runs
from orchlite.store import Store, TaskRun
from tests.helpers import ORCH, Project

SUCCESS = {"COMPLETED", "CACHED"}
UNFINISHED_FLOW = {"RUNNING", "PENDING", "CANCELLING"}
UNFINISHED_TASK = {"RUNNING", "PENDING"}
TASKS = 40
SLOW_TASK = 20


def payload(i: int) -> object:
    """What `step(i)` returns: every third value is over 4 KiB, so it is stored as a blob."""
    if i % 3 == 0:
        return (f"blob-{i}-" * 700).encode()
    return f"value-{i}"


def append_line(name: str, line: str, sync: bool = False) -> None:
    """Append one line to `name` in one write(2); fsync it when `sync`."""
    fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


FLOW_SOURCE = (
    "import os\nimport time\n\n"
    "from orchlite import flow, get_run_context, interval, on_flow, task\n\n"
    f"TASKS = {TASKS}\nSLOW_TASK = {SLOW_TASK}\n\n\n"
    + inspect.getsource(payload)
    + "\n\n"
    + inspect.getsource(append_line)
    + textwrap.dedent(
        """


        @task
        def step(i: int):
            append_line("exec.log", f"{i}\\n")
            if i == SLOW_TASK:
                wait_until_recorded_running()
            return payload(i)


        def wait_until_recorded_running():
            # A long task: it runs until the store shows it RUNNING (at most 10 s).
            from pathlib import Path

            from orchlite.store import Store

            task_run = get_run_context().task_run
            deadline = time.monotonic() + 10
            with Store(Path(os.environ["ORCH_HOME"]), create=False) as store:
                while time.monotonic() < deadline:
                    rows = store.task_runs(task_run.flow_run_id)
                    if any(r.position == task_run.position and r.state == "RUNNING" for r in rows):
                        return
                    time.sleep(0.02)


        @flow
        def many(n: int = TASKS):
            for i in range(n):
                value = step(i)
                if value != payload(i):
                    raise ValueError(f"step {i} returned {value!r}")
                append_line("ack.log", f"{i}\\n", sync=True)


        @flow(schedules=[interval(seconds=1)])
        def every_second():
            append_line("daemon-exec.log", f"{get_run_context().run_id}\\n", sync=True)
            time.sleep(0.3)
            for i in range(3):
                step(i)


        @flow(triggers=[on_flow("many")])
        def after_many():
            append_line("trigger-exec.log", f"{get_run_context().run_id}\\n", sync=True)
        """
    )
)


def new_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    project.write("flows.py", FLOW_SOURCE)
    return project


def read_ints(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().splitlines() if line.strip()]


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def open_store(project: Project) -> Store | None:
    return Store(project.home, create=False) if (project.home / "orch.db").exists() else None


def succeeded(store: Store, run_id: str) -> dict[int, TaskRun]:
    """The task runs of `run_id` recorded COMPLETED or CACHED, by call position."""
    return {t.position: t for t in store.task_runs(run_id, with_results=True) if t.state in SUCCESS}


def check_store(
    project: Project,
    *,
    runs: Iterable[str] | None = None,
    verified: set[str] | None = None,
    reap: bool = True,
) -> list[str]:
    """Every invariant of the module docstring; returns the violations (empty: all hold).

    Results are loaded and compared for the flow runs in `runs` (all when None); blobs whose
    digest is in `verified` were hashed whole by an earlier check and are skipped (a blob
    is never rewritten), and those hashed now are added to it.
    """
    store = open_store(project)
    if store is None:
        return []
    verified = set() if verified is None else verified
    problems: list[str] = []
    try:
        integrity = store.integrity_check()
        if integrity != "ok":
            return [f"integrity_check: {integrity}"]
        blobs = BlobStore(project.home / "blobs")
        for kind, row, digest in store.blob_references():
            if digest in verified:
                continue
            path = blobs.path(digest)
            if not path.is_file():
                problems.append(f"{kind} {row} references missing blob {digest[:12]}")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                problems.append(f"{kind} {row} references partial blob {digest[:12]}")
            else:
                verified.add(digest)
        checked = [r.id for r in store.list_flow_runs(limit=1_000_000)] if runs is None else runs
        for run_id in checked:
            flow_name = store.get_flow_run(run_id).flow_name
            for position, task in succeeded(store, run_id).items():
                try:
                    value = results.load(task.result, blobs)  # type: ignore[arg-type]
                except Exception as exc:
                    problems.append(f"run {run_id[:8]} task {position}: unreadable ({exc})")
                    continue
                if flow_name in ("many", "every-second", "every_second") and value != payload(
                    position
                ):
                    problems.append(f"run {run_id[:8]} task {position}: wrong value {value!r}")
        if reap:
            reap_dead_runs(store)
        problems += [
            f"run {run.id[:8]} left {run.state} after reaping"
            for run in store.unfinished_flow_runs()
            if run.state in UNFINISHED_FLOW
        ]
        marks = ",".join("?" * len(UNFINISHED_TASK))
        problems += [
            f"run {run_id[:8]} task {position} left {state} after reaping"
            for run_id, position, state in store.conn.execute(
                f"SELECT flow_run_id, position, state FROM task_runs WHERE state IN ({marks})",
                tuple(UNFINISHED_TASK),
            )
        ]
        problems += [
            f"schedule slot {key} @ {slot} has {n} runs"
            for key, slot, n in store.conn.execute(
                "SELECT key, slot, COUNT(*) FROM schedule_slots GROUP BY key, slot"
                " HAVING COUNT(*) > 1"
            )
        ]
    finally:
        store.close()
    return problems


def check_acknowledged(project: Project, run_id: str | None, acked: list[int]) -> list[str]:
    """Every completion the child acknowledged is recorded completed in its run."""
    if not acked:
        return []
    if run_id is None:
        return [f"{len(acked)} completion(s) acknowledged, but no run was recorded"]
    store = open_store(project)
    assert store is not None
    try:
        done = succeeded(store, run_id)
    finally:
        store.close()
    lost = sorted(set(acked) - set(done))
    return [f"run {run_id[:8]}: acknowledged task(s) {lost} not recorded completed"] if lost else []


def check_executions(
    project: Project,
    run_id: str | None,
    resumed: dict[int, TaskRun],
    executed: list[int],
    *,
    finished: bool,
    n: int = TASKS,
) -> list[str]:
    """A run resuming from a run whose completed tasks are `resumed` executes none of them,
    executes every other task at most once, and, when it `finished`, exactly once."""
    problems = []
    twice = sorted(i for i, count in Counter(executed).items() if count > 1)
    if twice:
        problems.append(f"task(s) {twice} executed twice in one run")
    again = sorted(set(executed) & set(resumed))
    if again:
        problems.append(f"task(s) {again} executed again though completed before")
    if run_id is None:
        if executed:
            problems.append(f"task(s) {sorted(set(executed))} executed, but no run was recorded")
        return problems
    if finished:
        expected = set(range(n)) - set(resumed)
        if set(executed) != expected:
            problems.append(
                f"run {run_id[:8]} executed {sorted(set(executed))}, expected {sorted(expected)}"
            )
    store = open_store(project)
    assert store is not None
    try:
        for position, task in succeeded(store, run_id).items():
            if task.state == "CACHED" and position not in resumed:
                problems.append(f"task {position} answered from a result that was never recorded")
            if task.state == "COMPLETED" and position not in executed:
                problems.append(f"task {position} recorded COMPLETED but never executed")
    finally:
        store.close()
    return problems


def top_level_runs(project: Project) -> dict[str, str]:
    """Run id -> state of every top-level run."""
    store = open_store(project)
    if store is None:
        return {}
    try:
        return {
            r.id: r.state for r in store.list_flow_runs(limit=1_000_000, include_subflows=False)
        }
    finally:
        store.close()


def resumed_tasks(project: Project, run_id: str | None) -> dict[int, TaskRun]:
    if run_id is None:
        return {}
    store = open_store(project)
    assert store is not None
    try:
        return succeeded(store, run_id)
    finally:
        store.close()


def start_orch(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`orch ARGS` as a child of this process; its output is dropped."""
    return subprocess.Popen(
        [*ORCH, *args],
        cwd=project.root,
        env=env or project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def children_of(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the parent pid follows its ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_daemon(daemon: subprocess.Popen[bytes], *, with_runs: bool) -> None:
    """SIGKILL the daemon, and with `with_runs` the process groups of its runs first.

    The daemon is stopped (SIGSTOP) while its children are listed, so it cannot start one
    in between; SIGKILL follows at once.
    """
    os.kill(daemon.pid, signal.SIGSTOP)
    if with_runs:
        for child in children_of(daemon.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
    daemon.kill()
    daemon.wait()


def wait_quiet(project: Project, timeout: float = 60.0) -> None:
    """Wait until no process works in the project any more: the runs a killed daemon left
    behind, including one still starting that has not yet adopted its run."""
    root = project.root.resolve()

    def working() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(entry / "cwd")) == root and pid_alive(int(entry.name)):
                        found.append(int(entry.name))
        return found

    deadline = time.monotonic() + timeout
    while working():
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {working()} still work in {root} after {timeout} s")
        time.sleep(0.05)


@dataclass
class Tally:
    """What a loop did, and every invariant it saw broken."""

    kills: int = 0
    finished: int = 0
    violations: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, where: str, problems: list[str]) -> None:
        for problem in problems:
            self.violations.append(f"{where}: {problem}")
            say(f"VIOLATION {where}: {problem}")

    def line(self, what: str) -> str:
        return (
            f"{what}: {self.kills} kills, {self.finished} runs finished unkilled,"
            f" {len(self.violations)} invariant violations, {time.monotonic() - self.started:.0f} s"
        )


def say(text: str) -> None:
    """Progress for long runs (visible with `pytest -s`)."""
    print(text, file=sys.stderr, flush=True)
