"""Timeouts interrupt the body they time: what follows the deadline never runs, nothing is
logged under a run that has ended, and the process goes on as before."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, get_run_logger, task, timeouts
from orchlite.errors import TaskTimeoutError
from orchlite.logging import setup_logging
from orchlite.task_runners import ThreadPoolTaskRunner
from orchlite.timeouts import GRACE
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


@pytest.fixture(autouse=True)
def no_timed_call_left_open() -> Iterator[None]:
    """After each test no timed call is left open, in any thread, and SIGALRM is free."""
    yield
    deadline = time.monotonic() + 5
    while timeouts.active() and time.monotonic() < deadline:
        time.sleep(0.01)  # a helper thread that was given up on, still ending
    assert not timeouts.active()
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A file the statement after the deadline would write."""
    return tmp_path / "after-the-deadline"


def short_sleeps(seconds: float) -> None:
    """Python code between sleeps: where an exception raised in a thread lands."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


def logged_after_end(run_id: str) -> list[str]:
    """Messages recorded for `run_id` or its task runs after the run ended (besides the
    engine's own "Finished in state ..." line)."""
    s = store()
    ended = s.get_flow_run(run_id).ended
    assert ended is not None
    ends = {t.id: t.ended for t in s.task_runs(run_id)}
    late = []
    for record in s.logs(run_id):
        end = ends.get(record.task_run_id or "", ended) or ended
        if record.ts > end and not record.message.startswith("Finished in state"):
            late.append(record.message)
    return late


def test_a_flow_body_in_one_long_sleep_is_interrupted_at_its_deadline(marker: Path) -> None:
    @flow(timeout_seconds=0.3)
    def slow() -> None:
        get_run_logger().info("starting")
        time.sleep(1.5)
        marker.write_text("I will not execute")
        get_run_logger().info("I will not execute")

    @flow(timeout_seconds=5)
    def next_run() -> str:
        time.sleep(1.5)  # longer than what was left of the first body's sleep
        return "done"

    handler_before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    state = slow(return_state=True)
    assert time.monotonic() - started < 1.2
    timed_out = last_run()
    assert timed_out.state == "TIMED_OUT"
    assert state.message == "Flow run exceeded timeout of 0.3 second(s)"
    assert timed_out.state_message == "Flow run exceeded timeout of 0.3 second(s)"

    assert next_run() == "done"  # the same process, unaffected
    assert last_run().state == "COMPLETED"
    assert not marker.exists()
    assert logged_after_end(timed_out.id) == []
    assert [r.message for r in store().logs(timed_out.id, text="execute")] == []
    assert signal.getsignal(signal.SIGALRM) is handler_before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_task_body_in_a_worker_thread_is_interrupted(marker: Path) -> None:
    @task(timeout_seconds=0.3)
    def slow_task() -> None:
        for i in range(100):
            get_run_logger().info("step %d", i)
            short_sleeps(0.05)
        marker.write_text("I will not execute")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> Any:
        return slow_task.submit().result(raise_on_failure=False)

    started = time.monotonic()
    error = pipeline()
    assert isinstance(error, TaskTimeoutError)
    assert time.monotonic() - started < 0.3 + GRACE + 1
    run = last_run()
    (task_run,) = store().task_runs(run.id)
    assert task_run.state == "TIMED_OUT"
    assert task_run.state_message == "Task run exceeded timeout of 0.3 second(s)"
    assert task_run.error_message == "Task run 'slow_task-0' exceeded timeout of 0.3 second(s)"
    assert not marker.exists()
    assert logged_after_end(run.id) == []


def test_a_task_body_in_the_main_thread_is_interrupted_in_its_sleep(marker: Path) -> None:
    @task(timeout_seconds=0.2)
    def sleepy(n: int) -> None:
        time.sleep(30)
        marker.write_text("I will not execute")

    @task
    def after(n: int) -> int:
        return n

    @flow
    def pipeline() -> int:
        sleepy(1, return_state=True)
        return after(2)

    started = time.monotonic()
    assert pipeline() == 2
    assert time.monotonic() - started < 5
    states = [t.state for t in store().task_runs(last_run().id)]
    assert states == ["TIMED_OUT", "COMPLETED"]
    assert not marker.exists()


def test_a_flow_body_in_a_thread_is_interrupted(marker: Path) -> None:
    @flow(timeout_seconds=0.3)
    def slow() -> None:
        short_sleeps(1.5)
        marker.write_text("I will not execute")

    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(slow(return_state=True)))
    worker.start()
    worker.join(10)
    (state,) = outcome
    assert state.message == "Flow run exceeded timeout of 0.3 second(s)"
    short_sleeps(1.5)
    assert not marker.exists()
    assert logged_after_end(last_run().id) == []


def test_except_exception_in_the_body_does_not_swallow_the_timeout(marker: Path) -> None:
    @flow(timeout_seconds=0.2)
    def stubborn() -> None:
        try:
            time.sleep(30)
        except Exception as exc:
            marker.write_text(f"swallowed {exc!r}")
        marker.write_text("I will not execute")

    with pytest.raises(TaskTimeoutError, match="Flow run exceeded timeout"):
        stubborn()
    assert not marker.exists()


def test_a_task_timeout_inside_a_flow_timeout_ends_only_the_task(marker: Path) -> None:
    @task(timeout_seconds=0.2)
    def quick_timeout() -> None:
        time.sleep(30)

    @flow(timeout_seconds=5)
    def pipeline() -> str:
        state = quick_timeout(return_state=True)
        time.sleep(0.4)  # past the task's deadline: the flow's timer still counts from 5 s
        return f"{state.type.value} {state.name}"

    assert pipeline() == "FAILED TimedOut"  # Prefect's type, and the finer name
    assert last_run().state == "COMPLETED"


def test_a_flow_timeout_that_passes_inside_a_task_body_stops_the_flow(marker: Path) -> None:
    @task(timeout_seconds=10)
    def long_task() -> None:
        time.sleep(30)
        marker.write_text("I will not execute")

    @task
    def never(n: int) -> None:
        marker.write_text("I will not execute either")

    @flow(timeout_seconds=0.3)
    def pipeline() -> None:
        long_task()
        never(1)

    started = time.monotonic()
    state = pipeline(return_state=True)
    assert time.monotonic() - started < 5
    assert state.message == "Flow run exceeded timeout of 0.3 second(s)"
    run = last_run()
    (task_run,) = store().task_runs(run.id)
    assert task_run.state == "CANCELLED"
    assert task_run.state_message == "interrupted: an enclosing run exceeded its timeout"
    assert not marker.exists()


def test_a_flow_timeout_during_many_quick_tasks_leaves_every_task_run_finished() -> None:
    @task
    def quick(n: int) -> int:
        return n

    @flow(timeout_seconds=0.5)
    def busy() -> None:
        n = 0
        while True:
            n += 1
            quick(n)

    state = busy(return_state=True)
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    runs = store().task_runs(last_run().id)
    assert len(runs) > 10
    assert {t.state for t in runs} <= {"COMPLETED", "CANCELLED"}
    assert all(t.ended is not None for t in runs)


def test_a_body_stuck_in_c_in_a_thread_is_abandoned_and_cannot_start_tasks() -> None:
    outcome: list[str] = []
    finished = threading.Event()

    @task
    def inner() -> None:
        outcome.append("inner ran")

    @task(timeout_seconds=0.2)
    def outer() -> None:
        try:
            time.sleep(GRACE + 0.8)  # one C call: interrupted only once it returns
        except BaseException as exc:
            outcome.append(type(exc).__name__)  # and a body that swallows that
        try:
            inner()
        except BaseException as exc:
            outcome.append(type(exc).__name__)
        finished.set()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def pipeline() -> Any:
        return outer.submit().state

    started = time.monotonic()
    assert pipeline(return_state=True).is_failed()  # the returned task run state decides
    assert time.monotonic() - started < GRACE + 0.7  # the caller did not wait for the sleep
    assert finished.wait(10)
    assert outcome == ["Interrupted", "Interrupted"]
