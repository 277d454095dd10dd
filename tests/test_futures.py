"""`.submit()`, `.map()`, futures, `wait`, `as_completed` and the thread-pool task runner."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from orchlite import allow_failure, as_completed, flow, task, unmapped, wait
from orchlite.engine import run_flow
from orchlite.futures import PrefectFuture
from orchlite.logging import setup_logging
from orchlite.task_runners import ThreadPoolTaskRunner
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def test_submit_returns_a_future_and_runs_in_parallel() -> None:
    # Each task waits for all four to be running, and for the flow to have looked at the
    # futures: run one after another, the barrier breaks.
    all_running = threading.Barrier(5, timeout=20)

    @task
    def slow(x: int) -> int:
        all_running.wait()
        return x * 2

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def pipeline() -> list[int]:
        futures = [slow.submit(i) for i in range(4)]
        assert all(isinstance(f, PrefectFuture) for f in futures)
        assert not futures[0].done()
        all_running.wait()
        return [f.result() for f in futures]

    assert pipeline() == [0, 2, 4, 6]
    runs = store().task_runs(last_run().id)
    assert [r.state for r in runs] == ["COMPLETED"] * 4


def test_map_zips_iterables_and_passes_unmapped_values_whole() -> None:
    @task
    def combine(a: int, b: str, extra: list[int]) -> str:
        return f"{a}{b}{len(extra)}"

    @flow
    def pipeline() -> list[str]:
        return combine.map([1, 2, 3], ["x", "y", "z"], extra=unmapped([9, 9])).result()

    assert pipeline() == ["1x2", "2y2", "3z2"]


def test_map_with_different_lengths_fails_before_anything_runs() -> None:
    ran: list[int] = []

    @task
    def pair(a: int, b: int) -> None:
        ran.append(a)

    @flow
    def pipeline() -> None:
        pair.map([1, 2, 3], [1, 2])

    with pytest.raises(ValueError, match="different lengths: argument 1 has 3, argument 2 has 2"):
        pipeline()
    assert ran == []
    assert store().task_runs(last_run().id) == []


def test_futures_passed_to_tasks_are_resolved_and_recorded_as_upstream() -> None:
    @task
    def number(x: int) -> int:
        return x

    @task
    def add(values: list[int]) -> int:
        return sum(values)

    @flow
    def pipeline() -> int:
        parts = number.map([1, 2, 3])
        return add(parts)

    assert pipeline() == 6
    runs = store().task_runs(last_run().id)
    assert runs[-1].name == "add-0"
    assert json.loads(runs[-1].upstream) == [0, 1, 2]


def test_exception_surfaces_at_result_and_downstream_does_not_run() -> None:
    ran: list[str] = []

    @task
    def broken() -> int:
        raise ValueError("no data")

    @task
    def after(x: int) -> None:
        ran.append("after")

    @task
    def tolerant(x: object) -> str:
        return type(x).__name__

    @flow
    def pipeline() -> str:
        first = broken.submit()
        with pytest.raises(ValueError, match="no data"):
            first.result()
        downstream = after.submit(first)
        error = downstream.result(raise_on_failure=False)
        assert type(error).__name__ == "UpstreamTaskError"
        assert downstream.state.is_failed()
        assert "upstream task run 'broken-0' ended FAILED" in (downstream.state.message or "")
        return tolerant(allow_failure(first))

    assert pipeline() == "ValueError"
    assert ran == []


def test_flow_waits_for_unresolved_futures_and_its_return_value_decides_its_state() -> None:
    finished: list[int] = []

    @task
    def slow(x: int) -> None:
        time.sleep(0.2)
        finished.append(x)

    @task
    def bad(x: int) -> None:
        raise RuntimeError(f"bad {x}")

    @flow
    def fire_and_forget() -> None:
        slow.map([1, 2])
        bad.submit(0)  # neither returned nor raised from: does not fail the flow

    fire_and_forget()
    assert sorted(finished) == [1, 2]
    assert last_run().state == "COMPLETED"

    @flow
    def awaited() -> None:
        wait(bad.map([1, 2]))

    awaited()
    assert last_run().state == "COMPLETED"

    @flow
    def returned():
        return bad.submit(3)

    with pytest.raises(RuntimeError, match="bad 3"):
        returned()
    assert (last_run().state, last_run().state_message) == ("FAILED", "1/1 states failed.")


def test_returned_futures_become_states() -> None:
    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def pipeline():
        return {"squares": square.map([1, 2, 3])}

    result = pipeline()
    assert [state.result() for state in result["squares"]] == [1, 4, 9]
    assert all(state.is_completed() for state in result["squares"])


def test_as_completed_yields_in_finishing_order() -> None:
    @task
    def sleeper(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @flow
    def pipeline() -> list[float]:
        futures = sleeper.map([0.4, 0.05, 0.2])
        return [f.result() for f in as_completed(futures)]

    assert pipeline() == [0.05, 0.2, 0.4]


def test_wait_with_timeout_reports_what_is_not_done() -> None:
    release = threading.Event()

    @task
    def blocked() -> None:
        release.wait(10)

    @flow
    def pipeline() -> tuple[int, int]:
        future = blocked.submit()
        done, not_done = wait([future], timeout=0.1)
        counts = (len(done), len(not_done))
        release.set()
        return counts

    assert pipeline() == (0, 1)


def test_submit_outside_a_flow_runs_at_once() -> None:
    @task
    def lone(x: int) -> int:
        return x + 1

    future = lone.submit(1)
    assert future.done()
    assert future.result() == 2


def test_resume_of_a_mapped_flow_runs_only_the_failed_elements(tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    executed = tmp_path / "executed.txt"

    @task
    def process(item: int) -> int:
        with executed.open("a") as fh:
            fh.write(f"{item}\n")
        if item % 2 and not marker.exists():
            raise RuntimeError(f"odd item {item}")
        return item

    @flow
    def pipeline(items: list[int]) -> int:
        return sum(process.map(items).result())

    with pytest.raises(RuntimeError):
        pipeline(list(range(6)))
    failed_run = last_run()
    assert failed_run.state == "FAILED"
    marker.touch()
    executed.write_text("")
    assert run_flow(pipeline, (list(range(6)),), {}, resume_from=failed_run.id) == 15
    assert sorted(int(x) for x in executed.read_text().split()) == [1, 3, 5]
    resumed = store().task_runs(last_run().id)
    assert [r.state for r in resumed] == ["CACHED", "COMPLETED"] * 3
    assert resumed[0].state_message == f"resumed from {failed_run.id}"


def test_show_json_lists_each_task_runs_upstream_positions() -> None:
    from orchlite.views import run_detail

    @task
    def number(x: int) -> int:
        return x

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def pipeline() -> int:
        return add(number.submit(1), number.submit(2))

    assert pipeline() == 3
    tasks = run_detail(store(), last_run().id)["tasks"]
    assert [(t["name"], t["upstream"]) for t in tasks] == [
        ("number-0", []),
        ("number-1", []),
        ("add-0", [0, 1]),
    ]


def test_resume_after_a_timeout_and_after_a_cancellation() -> None:
    executed: list[str] = []

    @task
    def quick(name: str) -> str:
        executed.append(name)
        return name

    @task
    def ask_to_cancel() -> None:
        executed.append("ask")
        store().request_cancel(last_run().id)
        time.sleep(0.8)  # the run's process notices within half a second

    @flow(timeout_seconds=1.0)
    def slow(wait: float) -> str:
        quick("a")
        time.sleep(wait)
        return quick("b")

    @flow
    def cancelled(ask: bool) -> str:
        quick("c")
        if ask:
            ask_to_cancel()
        return quick("d")

    with pytest.raises(TimeoutError):
        slow(1.5)
    timed_out = last_run()
    assert timed_out.state == "TIMED_OUT"
    assert run_flow(slow, (0.0,), {}, resume_from=timed_out.id) == "b"
    assert [t.state for t in store().task_runs(last_run().id)] == ["CACHED", "COMPLETED"]

    executed.clear()
    with pytest.raises(BaseException, match="cancelled"):
        cancelled(True)
    stopped = last_run()
    assert stopped.state == "CANCELLED"
    assert executed == ["c", "ask"]
    assert run_flow(cancelled, (False,), {}, resume_from=stopped.id) == "d"
    assert [t.state for t in store().task_runs(last_run().id)] == ["CACHED", "COMPLETED"]
