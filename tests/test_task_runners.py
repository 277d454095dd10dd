"""Process-pool and Dask task runners, with real pools and real clusters.

Task bodies run in other processes while orchestration (states, retries, caching, logs) stays
in the flow's process; these tests check that a flow behaves the same as with threads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchlite import flow, get_run_context, get_run_logger, task
from orchlite.context import open_store
from orchlite.errors import ExitCode
from orchlite.futures import wait
from orchlite.logging import setup_logging
from orchlite.task_runners import (
    DaskTaskRunner,
    ProcessPoolTaskRunner,
    RemoteError,
    ThreadPoolTaskRunner,
    WorkerCrashedError,
)
from tests.helpers import child_env
from tests.helpers import orch as run_orch

# The `test` extra installs dask: the Dask tests below never skip.
DASK_INPROC = {
    "processes": False,
    "n_workers": 1,
    "threads_per_worker": 4,
    "dashboard_address": None,
}


@pytest.fixture(autouse=True)
def _quiet_logging() -> None:
    setup_logging(console=False)


def store():
    return open_store()[0]


def last_run():
    s = store()
    return s.get_flow_run(s.resolve_run_id("last"))


def task_runs(run_id: str | None = None):
    return {t.name: t for t in store().task_runs(run_id or last_run().id)}


def log_lines(run_id: str | None = None) -> list[tuple[str | None, str]]:
    return [(r.task_name, r.message) for r in store().logs(run_id or last_run().id)]


# -- things the tests send to workers -------------------------------------------------------


@dataclass
class Point:
    x: int
    y: int


class NeedsTwo(Exception):
    """Pickles, but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


class Boom(Exception):
    pass


def pid_state(pid: int) -> str | None:
    """'Z' for a zombie, None for a process that is gone, else its state letter."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


# -- the process pool, end to end through the CLI ------------------------------------------

FLOW_FILE = """
import json
import os
from dataclasses import dataclass
from pathlib import Path

from orchlite import flow, get_run_logger, task
from orchlite.cache_policies import INPUTS
from orchlite.task_runners import DaskTaskRunner, ProcessPoolTaskRunner, ThreadPoolTaskRunner


@dataclass
class Point:
    x: int
    y: int


def scale(p, k):
    return Point(p.x * k, p.y * k)


@task(log_prints=True)
def move(p: Point) -> Point:
    get_run_logger().info("moving %s", p)
    print(f"printed {p.x}")
    return scale(p, 10)


@task(retries=1, retry_delay_seconds=0)
def flaky(tag: str) -> str:
    marker = Path(f"{tag}.attempted")
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("first attempt fails")
    get_run_logger().warning("second attempt of %s", "flaky")
    return "ok"


@task(cache_policy=INPUTS)
def cached(tag: str, x: int) -> int:
    return x + 1


@task
def boom(x: int) -> int:
    raise ValueError(f"bad value {x}")


@task
def where() -> int:
    return os.getpid()


def body(tag):
    moved = move.map([Point(1, 2), Point(3, 4)]).result()
    assert all(isinstance(p, Point) for p in moved), moved
    flaky.submit(tag).result()
    first = cached.submit(tag, 1).result()
    second = cached.submit(tag, 1).result()
    try:
        boom.submit(7).result()
    except ValueError as exc:
        get_run_logger().info("caught %s: %s", type(exc).__name__, exc)
    out = {
        "moved": [[p.x, p.y] for p in moved],
        "cached": [first, second],
        "flow_pid": os.getpid(),
        "task_pid": where.submit().result(),
    }
    Path(f"{tag}.json").write_text(json.dumps(out))


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def in_processes():
    body("processes")


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def in_threads():
    body("threads")


@flow(task_runner=DaskTaskRunner("tcp://127.0.0.1:1"))
def dask_nowhere():
    return where.submit().result()
"""

HEADER = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| (\w+)\s*\| (.*)$")


def orch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in `cwd`, which finds its store from there (no ORCH_HOME)."""
    return run_orch(cwd, *args, env=child_env(None))


def log_heads(cwd: Path, run_id: str) -> list[str]:
    """First line of each log record of the run, without its time stamp, sorted."""
    out = orch(cwd, "logs", run_id)
    assert out.returncode == 0, out.stderr
    heads = []
    for line in out.stdout.splitlines():
        match = HEADER.match(line)
        if match:
            heads.append(f"{match.group(1)} | {match.group(2)}")
    return sorted(heads)


def test_flow_file_runs_in_processes_as_it_does_in_threads(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    details = {}
    for flow_name in ("in_processes", "in_threads"):
        done = orch(tmp_path, "run", "flow.py:" + flow_name, "--json")
        assert done.returncode == 0, done.stderr
        details[flow_name] = json.loads(done.stdout)
        assert details[flow_name]["state"] == "COMPLETED"

    processes = json.loads((tmp_path / "processes.json").read_text())
    threads = json.loads((tmp_path / "threads.json").read_text())
    assert processes["moved"] == threads["moved"] == [[10, 20], [30, 40]]
    assert processes["cached"] == threads["cached"] == [2, 2]
    assert processes["task_pid"] != processes["flow_pid"]
    assert threads["task_pid"] == threads["flow_pid"]

    def shape(detail):
        return [
            (t["name"], t["state"], t["attempts"], t["message"], t["error"])
            for t in detail["tasks"]
        ]

    assert shape(details["in_processes"]) == shape(details["in_threads"])
    tasks = {t["name"]: t for t in details["in_processes"]["tasks"]}
    assert tasks["flaky-0"]["state"] == "COMPLETED" and tasks["flaky-0"]["attempts"] == 2
    assert tasks["cached-1"]["state"] == "CACHED"
    assert tasks["boom-0"]["state"] == "FAILED"
    assert tasks["boom-0"]["error"] == "ValueError: bad value 7"

    heads = {name: log_heads(tmp_path, d["id"]) for name, d in details.items()}
    assert heads["in_processes"] == heads["in_threads"]
    assert "INFO | Task run 'move-0' - moving Point(x=1, y=2)" in heads["in_processes"]
    assert "INFO | Task run 'move-1' - printed 3" in heads["in_processes"]
    assert "WARNING | Task run 'flaky-0' - second attempt of flaky" in heads["in_processes"]
    assert "INFO | Flow run - caught ValueError: bad value 7" in heads["in_processes"]

    # The worker's traceback is kept with the failure: file, line and source of the raise.
    logs = orch(tmp_path, "logs", details["in_processes"]["id"], "--task", "boom-0").stdout
    assert "Traceback in the worker process" in logs
    line = FLOW_FILE.splitlines().index('    raise ValueError(f"bad value {x}")') + 1
    assert f'flow.py", line {line}, in boom' in logs
    assert 'raise ValueError(f"bad value {x}")' in logs


# -- the process pool, in this process -------------------------------------------------------


def test_exception_in_a_worker_surfaces_at_result_with_its_type_and_traceback() -> None:
    @task
    def fails(x: int) -> int:
        raise Boom(f"worker says no to {x}")

    caught: list[BaseException] = []

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        future = fails.submit(3)
        try:
            future.result()
        except Boom as exc:
            caught.append(exc)
        assert future.state.is_failed()

    pipeline()
    (exc,) = caught
    assert type(exc) is Boom and str(exc) == "worker says no to 3"
    note = "\n".join(getattr(exc, "__notes__", [])) or str(exc.__cause__)
    assert "Traceback in the worker process" in note
    assert 'raise Boom(f"worker says no to {x}")' in note
    run = task_runs()["fails-0"]
    assert (run.state, run.error_type, run.error_message) == (
        "FAILED",
        "Boom",
        "worker says no to 3",
    )
    assert "in fails" in run.traceback


def test_worker_traceback_names_the_source_file_whatever_the_pickler_wrote() -> None:
    """A pickler may rename a by-value function's file (cloudpickle 3.1.3 writes
    "<dynamic-code>"): the traceback still names the user's file, line and source line."""

    def fails(x: int) -> int:
        raise Boom(f"no to {x}")  # the raising line

    fails.__code__ = fails.__code__.replace(co_filename="<renamed-by-a-pickler>")
    failing = task(fails)
    caught: list[BaseException] = []

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        try:
            failing.submit(1).result()
        except Boom as exc:
            caught.append(exc)

    pipeline()
    (exc,) = caught
    note = "\n".join(getattr(exc, "__notes__", []))
    raise_line = fails.__code__.co_firstlineno + 1
    assert f'File "{os.path.abspath(__file__)}", line {raise_line}, in fails' in note
    assert 'raise Boom(f"no to {x}")  # the raising line' in note
    assert "<renamed-by-a-pickler>" not in note
    assert f'test_task_runners.py", line {raise_line}' in task_runs()["fails-0"].traceback


def test_an_exception_that_cannot_travel_back_keeps_its_name_and_message() -> None:
    @task
    def fails() -> None:
        raise NeedsTwo("a", "b")

    caught: list[BaseException] = []

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        try:
            fails.submit().result()
        except RemoteError as exc:
            caught.append(exc)

    pipeline()
    (exc,) = caught
    assert type(exc).__name__ == "NeedsTwo" and str(exc) == "a/b"
    run = task_runs()["fails-0"]
    assert (run.state, run.error_type, run.error_message) == ("FAILED", "NeedsTwo", "a/b")


def test_unpicklable_argument_or_result_fails_the_task_naming_it() -> None:
    @task
    def takes(lock: object, n: int) -> int:
        return n

    @task
    def gives() -> object:
        return threading.Lock()

    @task
    def fine(n: int) -> int:
        return n * 2

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def pipeline() -> int:
        takes.submit(threading.Lock(), 1).wait()
        gives.submit().wait()
        return fine.submit(21).result()

    assert pipeline() == 42  # failed task runs it waited for do not fail the flow
    runs = task_runs()
    assert runs["takes-0"].state == "FAILED"
    assert runs["takes-0"].error_message.startswith(
        "cannot send argument 'lock' of type 'lock' to a worker process: "
    )
    assert runs["gives-0"].state == "FAILED"
    assert runs["gives-0"].error_message.startswith(
        "cannot send the return value of type 'lock' back from the worker process: "
    )
    assert runs["fine-0"].state == "COMPLETED"


def test_run_context_and_logs_in_a_worker_belong_to_the_task_run() -> None:
    @task(log_prints=True)
    def inspect_context(p: Point) -> tuple[str, dict, int]:
        ctx = get_run_context()
        get_run_logger().warning("point %s", p)
        print("hello from", type(p).__name__)
        return ctx.task_run.name, dict(ctx.parameters), os.getpid()

    @task
    def quiet() -> None:
        print("not captured: log_prints is off")

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> tuple[str, dict, int]:
        quiet.submit().wait()
        return inspect_context.submit(Point(1, 2)).result()

    name, parameters, pid = pipeline()
    assert name == "inspect_context-0"
    assert parameters == {"p": Point(1, 2)}
    assert pid != os.getpid()
    run = task_runs()["inspect_context-0"]
    records = [r for r in store().logs(last_run().id) if r.task_run_id == run.id]
    assert [(r.level, r.logger, r.message) for r in records] == [
        (30, "orchlite.task_runs", "point Point(x=1, y=2)"),
        (20, "orchlite.task_runs", "hello from Point"),
    ]
    assert ("quiet-0", "not captured: log_prints is off") not in log_lines()


def test_tasks_cannot_be_called_from_a_body_in_a_worker() -> None:
    @task
    def inner() -> int:
        return 1

    @task
    def outer() -> int:
        return inner()

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        outer.submit().wait()

    pipeline()
    run = task_runs()["outer-0"]
    assert run.state == "FAILED"
    assert "cannot call tasks or flows" in run.error_message


def test_a_timed_out_body_is_abandoned_and_its_worker_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    @task(timeout_seconds=1)
    def hangs(path: Path) -> None:
        path.write_text(str(os.getpid()))
        time.sleep(60)

    @task
    def after() -> int:
        return os.getpid()

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> int:
        hangs.submit(pid_file).wait()
        return after.submit().result()  # a fresh worker: the hung one is retired

    started = time.monotonic()
    pipeline()
    assert time.monotonic() - started < 15
    runs = task_runs()
    assert runs["hangs-0"].state == "TIMED_OUT"
    assert runs["hangs-0"].error_message == "Task run 'hangs-0' exceeded timeout of 1 second(s)"
    assert runs["after-0"].state == "COMPLETED"
    hung = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while pid_state(hung) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_state(hung) in (None, "Z")


def test_a_flow_timeout_does_not_wait_for_bodies_in_workers() -> None:
    @task
    def hangs() -> None:
        time.sleep(60)

    @flow(timeout_seconds=2, task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        hangs.submit().result()

    started = time.monotonic()
    state = pipeline(return_state=True)
    assert time.monotonic() - started < 15
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    deadline = time.monotonic() + 5
    while task_runs()["hangs-0"].state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task_runs()["hangs-0"].state == "CANCELLED"


def test_a_worker_that_dies_fails_its_task_and_the_pool_recovers() -> None:
    @task
    def dies() -> None:
        os._exit(3)

    @task
    def lives() -> str:
        return "ok"

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> str:
        dies.submit().wait()
        return lives.submit().result()

    assert pipeline() == "ok"
    runs = task_runs()
    assert runs["dies-0"].state == "FAILED"
    assert runs["dies-0"].error_type == WorkerCrashedError.__name__
    assert "the worker process running task run 'dies-0' died" in runs["dies-0"].error_message
    assert runs["lives-0"].state == "COMPLETED"


def test_runners_keep_the_task_runner_contract() -> None:
    runner = ProcessPoolTaskRunner(max_workers=2)
    copy = runner.duplicate()
    assert isinstance(copy, ProcessPoolTaskRunner) and copy is not runner
    assert copy.max_workers == 2
    assert repr(copy) == "ProcessPoolTaskRunner(max_workers=2)"
    with pytest.raises(ValueError):
        ProcessPoolTaskRunner(max_workers=0)
    dask = DaskTaskRunner(cluster_kwargs=DASK_INPROC, client_kwargs={"set_as_default": False})
    assert dask.duplicate().cluster_kwargs == DASK_INPROC
    assert isinstance(ThreadPoolTaskRunner().duplicate(), ThreadPoolTaskRunner)


# -- Dask -------------------------------------------------------------------------------------


def test_dask_in_process_cluster_runs_bodies_with_states_logs_and_errors(tmp_path: Path) -> None:
    release, finished = tmp_path / "release", tmp_path / "finished"

    @task(log_prints=True)
    def double(p: Point) -> Point:
        get_run_logger().info("doubling %s", p.x)
        print("printed", p.x)
        return Point(p.x * 2, p.y * 2)

    @task(retries=1, retry_delay_seconds=0)
    def fails() -> None:
        raise Boom("dask says no")

    @task(timeout_seconds=1)
    def hangs() -> None:
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        finished.touch()

    @flow(task_runner=DaskTaskRunner(cluster_kwargs=DASK_INPROC))
    def pipeline() -> list[Point]:
        fails.submit().wait()
        hangs.submit().wait()
        return double.map([Point(i, i) for i in range(4)]).result()

    assert pipeline() == [Point(i * 2, i * 2) for i in range(4)]
    assert not finished.exists()  # the flow ended while the hung body still ran
    release.touch()
    runs = task_runs()
    assert runs["hangs-0"].state == "TIMED_OUT"
    assert [runs[f"double-{i}"].state for i in range(4)] == ["COMPLETED"] * 4
    assert (runs["fails-0"].state, runs["fails-0"].attempts) == ("FAILED", 2)
    assert runs["fails-0"].error_message == "dask says no"
    lines = log_lines()
    for i in range(4):
        assert (f"double-{i}", f"doubling {i}") in lines
        assert (f"double-{i}", f"printed {i}") in lines
    by_id = {r.id: r.name for r in runs.values()}
    for record in store().logs(last_run().id):
        if record.task_run_id is not None:
            assert by_id[record.task_run_id] == record.task_name


def test_dask_with_worker_processes() -> None:
    @task
    def where(p: Point) -> tuple[int, Point]:
        get_run_logger().info("in a worker process")
        return os.getpid(), Point(p.y, p.x)

    cluster = {**DASK_INPROC, "processes": True, "threads_per_worker": 2}

    @flow(task_runner=DaskTaskRunner(cluster_kwargs=cluster))
    def pipeline() -> list[tuple[int, Point]]:
        return where.map([Point(1, 2), Point(3, 4)]).result()

    results = pipeline()
    assert [p for _, p in results] == [Point(2, 1), Point(4, 3)]
    assert all(pid != os.getpid() for pid, _ in results)
    assert ("where-0", "in a worker process") in log_lines()


class GraphCounter:
    """A scheduler plugin: how many graphs a client sent, and how many tasks in all."""

    name = "orch-graph-counter"

    def __init__(self) -> None:
        self.graphs = 0
        self.tasks = 0

    def update_graph(self, scheduler: object, *, keys: object, tasks: list, **kwargs) -> None:
        self.graphs += 1
        self.tasks += len(tasks)


@pytest.fixture
def counted_cluster():
    """An in-process LocalCluster whose scheduler counts the graphs it receives."""
    import distributed
    from distributed.diagnostics.plugin import SchedulerPlugin

    cluster = distributed.LocalCluster(**DASK_INPROC)
    counter = type("Counter", (GraphCounter, SchedulerPlugin), {})()
    cluster.scheduler.add_plugin(counter)
    try:
        yield cluster, counter
    finally:
        cluster.close()


attempts: dict[int, int] = {}


def test_dask_sends_a_map_in_batches_and_retries_only_the_failed_element(
    counted_cluster,
) -> None:
    cluster, counter = counted_cluster
    attempts.clear()

    @task(retries=1, retry_delay_seconds=0)
    def square(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1  # an in-process cluster: same interpreter
        if x == 7 and attempts[x] == 1:
            raise RuntimeError("first attempt of 7 fails")
        return x * x

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline(n: int) -> list[int]:
        return square.map(range(n)).result()

    assert pipeline(200) == [x * x for x in range(200)]
    runs = task_runs()
    assert {r.state for r in runs.values()} == {"COMPLETED"}
    assert runs["square-7"].attempts == 2
    assert sum(r.attempts for r in runs.values()) == 201
    # One body per attempt reached the cluster (the retry resent only element 7), in fewer
    # graphs than bodies: sent one at a time, it would be 201 graphs. How many fewer depends
    # on how close together the task runs get their bodies ready (10 to 110 seen here).
    assert counter.tasks == 201
    assert counter.graphs < counter.tasks, counter.graphs


def test_dask_delivers_each_body_when_it_finishes_not_with_its_batch(counted_cluster) -> None:
    cluster, _ = counted_cluster

    @task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    # Distinct inputs: equal ones could be served from the cache by whichever ran first.
    naps = [3.0] + [i / 1000 for i in range(20)]

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> tuple[bool, list[float]]:
        futures = nap.map(naps)
        wait(futures[1:], timeout=30)
        slow_done_meanwhile = futures[0].done()
        return slow_done_meanwhile, futures.result()

    slow_done_meanwhile, results = pipeline()
    assert not slow_done_meanwhile
    assert results == naps
    assert {r.state for r in task_runs().values()} == {"COMPLETED"}


def test_dask_runner_without_dask_fails_the_run_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    runner = DaskTaskRunner()  # constructing needs no dask

    @task
    def noop() -> None:
        return None

    @flow(task_runner=runner)
    def pipeline() -> None:
        noop.submit().wait()

    state = pipeline(return_state=True)
    assert state.type.value == "FAILED"
    assert state.message == (
        "UsageError: DaskTaskRunner needs the dask extra: pip install 'orchlite[dask]'"
    )
    assert last_run().state == "FAILED"


@pytest.mark.slow  # waits out the connection timeout
def test_wrong_dask_address_ends_the_run_failed_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    started = time.monotonic()
    done = orch(tmp_path, "run", "flow.py:dask_nowhere")
    assert time.monotonic() - started < 30
    message = "cannot connect to the Dask scheduler at tcp://127.0.0.1:1"
    errors = [line for line in done.stderr.splitlines() if message in line]
    # The run is recorded FAILED (not left RUNNING), and `orch run` reports the bad input as
    # its one error line with exit code 2.
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert errors, done.stderr
    assert "Traceback" not in done.stderr
    assert errors[-1].startswith("error: ") and errors[-1].endswith(" after 5 s")
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [errors[-1]]
    runs = json.loads(orch(tmp_path, "runs", "--json").stdout)
    assert [(r["flow"], r["state"]) for r in runs] == [("dask-nowhere", "FAILED")]
    assert runs[0]["message"].startswith(f"UsageError: {message}")
