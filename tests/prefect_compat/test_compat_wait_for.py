"""`wait_for=[...]` on task calls, `.submit()` and `.map()`, as Prefect 3's "Run work
concurrently" / task dependencies docs describe: the task run starts once those runs have
ended and records them as upstream dependencies; `wait_for` is not passed to the function.

One documented difference: a failed run in `wait_for` leaves Prefect's task run PENDING
("NotReady"); orchlite records it FAILED with the upstream failure as its message, as it does
for a failed future passed as an argument. `allow_failure(...)` lets it run in both.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from orchlite import allow_failure, flow, task
from orchlite.logging import setup_logging
from orchlite.task_runners import ThreadPoolTaskRunner
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def recorded_runs() -> dict[str, Any]:
    return {r.name: r for r in store().task_runs(last_run().id)}


def upstream_of(name: str) -> list[int]:
    return json.loads(recorded_runs()[name].upstream or "[]")


@task
def fails() -> None:
    raise ValueError("upstream broke")


def test_a_submitted_task_starts_after_the_runs_it_waits_for() -> None:
    release = threading.Event()
    seen: list[str] = []

    @task
    def task_1() -> None:
        release.wait(10)
        seen.append("task_1")

    @task
    def task_2() -> list[str]:
        return list(seen)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def my_flow() -> list[str]:
        x = task_1.submit()
        y = task_2.submit(wait_for=[x])
        release.set()  # task_1 finishes only now: task_2 must not have started before
        return y.result()

    assert my_flow() == ["task_1"]
    assert upstream_of("task_2-0") == [0]


def test_a_direct_call_waits_and_records_its_upstream() -> None:
    @task
    def produce() -> int:
        return 1

    @task
    def consume() -> str:
        return "ran"

    @flow
    def direct() -> str:
        first = produce.submit()
        return consume(wait_for=[first])

    assert direct() == "ran"
    assert upstream_of("consume-0") == [0]


def test_wait_for_is_not_passed_to_the_function() -> None:
    @task
    def takes_anything(**kwargs: Any) -> list[str]:
        return sorted(kwargs)

    @flow
    def passes() -> list[str]:
        first = takes_anything.submit(a=1)
        return takes_anything.submit(b=2, wait_for=[first]).result()

    assert passes() == ["b"]


def test_a_failed_run_in_wait_for_stops_the_task_from_running() -> None:
    ran: list[str] = []

    @task
    def after() -> None:
        ran.append("after")

    @flow
    def reports() -> tuple[bool, str]:
        broken = fails.submit()
        downstream = after.submit(wait_for=[broken])
        downstream.wait()
        return downstream.state.is_failed(), downstream.state.message or ""

    failed, message = reports()
    assert failed
    assert "upstream task run 'fails-0' ended FAILED" in message
    assert ran == []
    run = recorded_runs()["after-0"]
    assert run.state == "FAILED"
    assert json.loads(run.upstream) == [0]


def test_allow_failure_in_wait_for_lets_the_task_run() -> None:
    @task
    def cleanup() -> str:
        return "cleaned"

    @flow
    def tolerant() -> str:
        broken = fails.submit()
        return cleanup.submit(wait_for=[allow_failure(broken)]).result()

    assert tolerant() == "cleaned"
    assert upstream_of("cleanup-0") == [0]


def test_every_mapped_run_waits_for_all_of_wait_for() -> None:
    release = threading.Event()
    done: list[str] = []

    @task
    def setup() -> None:
        release.wait(10)
        done.append("setup")

    @task
    def work(x: int) -> tuple[int, bool]:
        return x, done == ["setup"]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def mapped() -> list[tuple[int, bool]]:
        ready = setup.submit()
        runs = work.map([1, 2, 3], wait_for=[ready])
        release.set()
        return runs.result()

    assert mapped() == [(1, True), (2, True), (3, True)]
    for name in ("work-0", "work-1", "work-2"):
        assert upstream_of(name) == [0]


def test_a_direct_call_with_a_failed_wait_for_raises_the_upstream_failure() -> None:
    @task
    def after() -> str:
        return "ran"

    @flow
    def raises() -> str:
        broken = fails.submit()
        return after(wait_for=[broken])

    with pytest.raises(Exception, match="upstream task run 'fails-0' ended FAILED"):
        raises()


def test_wait_for_outside_a_flow() -> None:
    @task
    def plain() -> str:
        return "ran"

    done = plain.submit()
    assert plain(wait_for=[done]) == "ran"
    with pytest.raises(Exception, match="ended FAILED"):
        plain(wait_for=[fails.submit()])


def test_a_subflow_waits_for_the_task_runs_in_its_wait_for() -> None:
    release = threading.Event()
    seen: list[str] = []

    @task
    def slow() -> None:
        release.wait(10)
        seen.append("slow")

    @flow
    def child() -> None:
        seen.append("child")

    @flow
    def parent() -> None:
        future = slow.submit()
        threading.Timer(0.2, release.set).start()
        child(wait_for=[future])

    parent()
    assert seen == ["slow", "child"]


def test_a_failed_run_in_a_subflows_wait_for_fails_it_before_its_body() -> None:
    ran: list[str] = []
    failed: list[str] = []

    @flow(on_failure=[lambda f, run, state: failed.append(state.message or "")])
    def child() -> None:
        ran.append("child")

    @flow
    def parent() -> tuple[str, str]:
        future = fails.submit()
        state = child(wait_for=[future], return_state=True)
        allowed = child(wait_for=[allow_failure(future)], return_state=True)
        return state.name, allowed.name

    # The body returned, so the parent completes (the failed task run is not returned).
    assert parent() == ("Failed", "Completed")
    (parent_run,) = store().list_flow_runs(include_subflows=False)
    blocked, allowed = sorted(store().child_flow_runs(parent_run.id), key=lambda r: r.created)
    assert blocked.state == "FAILED"
    assert "upstream task run 'fails-0' ended FAILED" in (blocked.state_message or "")
    assert allowed.state == "COMPLETED"
    assert ran == ["child"]
    assert len(failed) == 1
