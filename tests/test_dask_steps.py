"""DaskTaskRunner drives task runs as steps: no thread waits while a body is on the cluster.

An in-process cluster (one worker thread, shared by the tests of this module) runs the
bodies. A body travels pickled, as it would to another host, so bodies and tests talk
through files.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchlite import allow_failure, flow, task
from orchlite.logging import setup_logging
from orchlite.task_runners import STEP_THREADS, DaskTaskRunner, ThreadPoolTaskRunner
from tests.helpers.recorded import last_run, store


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    import distributed

    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(autouse=True)
def _quiet_logging() -> None:
    setup_logging(console=False)


def task_runs() -> dict[str, object]:
    return {t.name: t for t in store().task_runs(last_run().id)}


def orch_threads(besides: frozenset[threading.Thread] = frozenset()) -> list[str]:
    """orchlite's threads, leaving out `besides` (those an earlier test left running, such
    as the process-wide lease renewer of `orchlite.limits`)."""
    return [
        t.name for t in threading.enumerate() if t.name.startswith("orch-") and t not in besides
    ]


def wait_for_file(path: Path, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_task_runs_waiting_for_their_bodies_hold_no_thread(cluster, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"

    @task
    def gated(i: int) -> int:
        started.touch()
        wait_for_file(release)
        return i

    earlier = frozenset(threading.enumerate())

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> tuple[list[str], list[int]]:
        futures = gated.map(range(200))
        assert wait_for_file(started)
        during = orch_threads(besides=earlier)
        release.touch()
        return during, futures.result()

    during, results = pipeline()
    assert results == list(range(200))
    # The steps' threads, the dispatcher and collector, the recorder: not one per task run.
    assert len(during) <= STEP_THREADS + 3, during
    assert {r.state for r in task_runs().values()} == {"COMPLETED"}


def test_a_task_run_starts_when_its_upstream_futures_are_done(cluster) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def fails(x: int) -> int:
        raise ValueError(f"no {x}")

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @task
    def describe(value: object) -> str:
        return type(value).__name__

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> tuple[int, str]:
        incremented = inc.map(range(10))
        summed = total.submit(incremented)
        failed = fails.submit(1)
        inc.submit(failed)  # not awaited: its failure does not fail the flow
        tolerant = describe.submit(allow_failure(failed))
        return summed.result(), tolerant.result()

    assert pipeline() == (55, "ValueError")
    runs = task_runs()
    assert runs["total-0"].state == "COMPLETED"
    assert json.loads(runs["total-0"].upstream) == list(range(10))
    downstream = runs["inc-10"]
    assert downstream.state == "FAILED"
    assert downstream.attempts == 0  # it never started
    assert "upstream task run 'fails-0' ended FAILED" in downstream.state_message


def test_a_task_run_starts_when_the_runs_in_its_wait_for_are_done(cluster) -> None:
    @task
    def step(x: int) -> int:
        return x

    @task
    def fails() -> int:
        raise ValueError("no")

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> tuple[int, str]:
        first = step.submit(1)
        failed = fails.submit()
        after = step.submit(2, wait_for=[first])
        step.submit(3, wait_for=[failed])  # not awaited: its failure does not fail the flow
        tolerant = step.submit(4, wait_for=[allow_failure(failed)])
        return after.result(), str(tolerant.result())

    assert pipeline() == (2, "4")
    runs = task_runs()
    assert json.loads(runs["step-1"].upstream) == [0]
    blocked = runs["step-2"]
    assert blocked.state == "FAILED"
    assert blocked.attempts == 0  # it never started
    assert "upstream task run 'fails-0' ended FAILED" in blocked.state_message
    assert runs["step-3"].state == "COMPLETED"
    assert json.loads(runs["step-3"].upstream) == [1]


def test_retries_wait_their_delay_and_run_again(cluster, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    @task(retries=2, retry_delay_seconds=0.3)
    def flaky() -> int:
        with log.open("a") as out:
            out.write(f"{time.time()}\n")
        count = len(log.read_text().split())
        if count < 3:
            raise RuntimeError(f"attempt {count}")
        return count

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> int:
        return flaky.submit().result()

    assert pipeline() == 3
    times = [float(line) for line in log.read_text().split()]
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(times))
    run = task_runs()["flaky-0"]
    assert (run.state, run.attempts) == ("COMPLETED", 3)
    states = [h.state for h in store().history(last_run().id, run.position)]
    assert states.count("RETRYING") == 2


def test_a_concurrency_limit_holds_for_tagged_task_runs(cluster, tmp_path: Path) -> None:
    store().set_concurrency_limit("one-at-a-time", 1)
    spans = tmp_path / "spans"

    @task(tags=["one-at-a-time"])
    def limited(i: int) -> int:
        began = time.time()
        time.sleep(0.05)
        with spans.open("a") as out:
            out.write(f"{began} {time.time()}\n")
        return i

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> list[int]:
        return limited.map(range(6)).result()

    assert pipeline() == list(range(6))
    intervals = sorted(tuple(map(float, line.split())) for line in spans.read_text().splitlines())
    assert len(intervals) == 6
    assert all(end <= next_begin for (_, end), (next_begin, _) in itertools.pairwise(intervals))


def test_a_flow_timeout_cancels_task_runs_in_flight_and_starts_no_more(
    cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"

    @task
    def hangs(i: int) -> None:
        wait_for_file(release)

    @flow(timeout_seconds=1, task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> None:
        hangs.map(range(5)).wait()

    try:
        state = pipeline(return_state=True)
    finally:
        release.touch()
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    runs = task_runs()
    # Every task run had started (its body was on the cluster) and none is left running.
    assert len(runs) == 5
    assert {r.state for r in runs.values()} == {"CANCELLED"}


def test_a_task_run_resumed_before_its_step_returned_goes_on(cluster, tmp_path: Path) -> None:
    """A retry with no delay wakes its task run at once, often while the step that failed
    is still returning in another thread: the steps must not overlap, nor stall."""

    @task(retries=3, retry_delay_seconds=0)
    def third_time_lucky(i: int) -> int:
        marks = tmp_path / f"attempts-{i}"
        with marks.open("a") as out:
            out.write(".")
        if len(marks.read_text()) < 3:
            raise RuntimeError("not yet")
        return i

    @flow(task_runner=DaskTaskRunner(cluster=cluster))
    def pipeline() -> list[int]:
        return [f.result(timeout=60) for f in third_time_lucky.map(range(40))]

    assert pipeline() == list(range(40))
    assert {(r.state, r.attempts) for r in task_runs().values()} == {("COMPLETED", 3)}


@pytest.mark.parametrize("runner", ["dask", "threads"])
def test_a_task_waiting_to_retry_when_the_flow_times_out_ends_cancelled(
    cluster, runner: str, tmp_path: Path
) -> None:
    attempts = tmp_path / "attempts"

    @task(retries=1, retry_delay_seconds=2)
    def fails_first() -> None:
        with attempts.open("a") as out:
            out.write(".")
        raise RuntimeError("first attempt")

    task_runner = DaskTaskRunner(cluster=cluster) if runner == "dask" else ThreadPoolTaskRunner()

    @flow(timeout_seconds=1, task_runner=task_runner)
    def pipeline() -> None:
        fails_first.submit().wait()

    state = pipeline(return_state=True)
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    deadline = time.monotonic() + 10
    while task_runs()["fails_first-0"].state == "RETRYING" and time.monotonic() < deadline:
        time.sleep(0.05)
    run = task_runs()["fails_first-0"]
    assert (run.state, run.attempts) == ("CANCELLED", 1)
    assert attempts.read_text() == "."  # the retry never ran
