"""`async def` flows and tasks, as Prefect 3's docs describe them: calling one gives a
coroutine; awaited task calls run on the flow's event loop, so `asyncio.gather` runs them
concurrently; `.submit()` and `.map()` return futures; subflows, retries, timeouts, caching,
hooks and `return_state` work as for sync code.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, get_run_logger, task
from orchlite.cache_policies import INPUTS
from orchlite.logging import setup_logging
from orchlite.states import State, StateType
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def task_runs() -> dict[str, Any]:
    return {r.name: r for r in store().task_runs(last_run().id)}


def test_calling_an_async_flow_gives_a_coroutine_and_gather_runs_tasks_together() -> None:
    started: list[int] = []

    @task
    async def fetch(n: int) -> int:
        started.append(n)
        # Every call must have started before any can finish: only concurrent runs pass.
        for _ in range(500):
            if len(started) == 5:
                break
            await asyncio.sleep(0.01)
        assert len(started) == 5, "the task calls ran one after another"
        get_run_logger().info("fetched %s", n)
        return n * 10

    @flow
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(*[fetch(n) for n in range(5)]))

    call = pipeline()
    assert asyncio.iscoroutine(call)
    assert asyncio.run(call) == [0, 10, 20, 30, 40]
    run = last_run()
    assert (run.flow_name, run.state) == ("pipeline", "COMPLETED")
    runs = task_runs()
    # Positions follow the order of the calls, not of the finishes.
    assert sorted(runs) == [f"fetch-{i}" for i in range(5)]
    assert all(r.state == "COMPLETED" for r in runs.values())
    logs = [line.message for line in store().logs(run.id)]
    assert "fetched 3" in logs


def test_submit_and_map_of_async_tasks_return_futures() -> None:
    @task
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    async def pipeline() -> int:
        one = double.submit(1)
        many = double.map([2, 3, 4])
        return total([one.result(), *many.result()])

    assert asyncio.run(pipeline()) == 20
    assert len(task_runs()) == 5


def test_an_async_subflow_is_awaited_and_recorded_under_its_parent() -> None:
    @task
    async def shout(word: str) -> str:
        return word.upper()

    @flow
    async def child(word: str) -> str:
        return await shout(word)

    @flow
    async def parent() -> list[str]:
        return [await child("a"), await child("b")]

    assert asyncio.run(parent()) == ["A", "B"]
    parent_run = last_run()
    children = store().child_flow_runs(parent_run.id)
    assert [(c.flow_name, c.state) for c in children] == [("child", "COMPLETED")] * 2


def test_async_task_retries_then_succeeds() -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=0)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("try again")
        return "ok"

    @flow
    async def pipeline() -> str:
        return await flaky()

    assert asyncio.run(pipeline()) == "ok"
    (run,) = task_runs().values()
    assert (run.state, run.attempts) == ("COMPLETED", 2)


def test_an_async_task_timeout_cancels_its_body() -> None:
    after: list[str] = []

    @task(timeout_seconds=0.2)
    async def slow() -> None:
        await asyncio.sleep(30)
        after.append("I will not execute")

    seen: list[State[Any]] = []

    @flow
    async def pipeline() -> None:
        seen.append(await slow(return_state=True))

    asyncio.run(pipeline())
    (state,) = seen
    assert state.name == "TimedOut"
    assert state.type is StateType.FAILED
    assert "exceeded timeout of 0.2 second(s)" in (state.message or "")
    assert after == []
    (run,) = task_runs().values()
    assert run.state == "TIMED_OUT"


def test_an_async_flow_timeout_stops_the_flow() -> None:
    after: list[str] = []

    @flow(timeout_seconds=0.2)
    async def pipeline() -> None:
        await asyncio.sleep(30)
        after.append("I will not execute")

    state = asyncio.run(pipeline(return_state=True))
    assert state.name == "TimedOut"
    assert after == []
    assert last_run().state == "TIMED_OUT"


def test_a_failing_async_task_fails_the_flow_and_runs_its_hooks() -> None:
    failed: list[str] = []

    @task(on_failure=[lambda t, run, state: failed.append(state.name)])
    async def broken() -> None:
        raise ValueError("bad row")

    @flow
    async def pipeline() -> None:
        await broken()

    with pytest.raises(ValueError, match="bad row"):
        asyncio.run(pipeline())
    assert failed == ["Failed"]
    assert last_run().state == "FAILED"


def test_an_async_task_with_a_cache_policy_is_answered_from_the_cache() -> None:
    ran: list[int] = []

    @task(cache_policy=INPUTS)
    async def expensive(n: int) -> int:
        ran.append(n)
        return n + 1

    @flow
    async def pipeline() -> list[int]:
        return [await expensive(1), await expensive(1)]

    assert asyncio.run(pipeline()) == [2, 2]
    assert ran == [1]
    assert sorted(r.state for r in task_runs().values()) == ["CACHED", "COMPLETED"]


def test_an_async_task_called_outside_a_flow_runs_standalone() -> None:
    @task
    async def ping() -> str:
        return "pong"

    assert asyncio.run(ping()) == "pong"


def test_tasks_waiting_for_a_concurrency_slot_do_not_block_the_loop() -> None:
    store().set_concurrency_limit("api", 1)
    active: list[int] = []
    most: list[int] = []

    @task(tags=["api"])
    async def call_api(n: int) -> int:
        active.append(n)
        most.append(len(active))
        await asyncio.sleep(0.05)
        active.remove(n)
        return n

    @flow
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(*[call_api(n) for n in range(3)]))

    assert asyncio.run(pipeline()) == [0, 1, 2]
    assert max(most) == 1


def test_cancelling_the_awaiting_task_records_the_flow_run_cancelled() -> None:
    started = asyncio.Event()

    @flow
    async def endless() -> None:
        while True:
            time.sleep(0.01)  # a body that never yields to its loop: still interrupted

    async def main() -> None:
        job = asyncio.ensure_future(endless())
        while not store().list_flow_runs():
            await asyncio.sleep(0.02)
        started.set()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(main())
    assert started.is_set()
    assert last_run().state == "CANCELLED"
