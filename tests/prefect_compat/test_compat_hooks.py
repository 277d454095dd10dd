"""State change hooks as Prefect 3's "State change hooks" docs describe them: `on_running`
on tasks and flows, and the decorator form of every hook (`@my_task.on_running`,
`@my_flow.on_crashed`, ...), which registers the function and gives it back unchanged.
Each hook is called as `hook(task_or_flow, run, state)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, task
from orchlite.errors import CancelledRun
from orchlite.logging import setup_logging
from tests.helpers.recorded import last_run


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def test_on_running_task_hook_is_called_before_the_body_with_a_running_state() -> None:
    events: list[str] = []

    def announce(tsk: Any, run: Any, state: Any) -> None:
        events.append(f"{tsk.name} {run.name} {state.type.value} {state.name}")

    @task(on_running=[announce])
    def work() -> None:
        events.append("body")

    @flow
    def pipeline() -> None:
        work()

    pipeline()
    assert events == ["work work-0 RUNNING Running", "body"]


def test_on_running_task_hook_is_called_for_each_attempt() -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=0)
    def flaky() -> str:
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "ok"

    @flaky.on_running
    def count(tsk: Any, run: Any, state: Any) -> None:
        attempts.append(run.attempts)

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "ok"
    assert attempts == [1, 2, 3]


def test_on_running_flow_hook_sees_the_flow_run_running() -> None:
    seen: list[tuple[str, str, str]] = []

    def started(flw: Any, run: Any, state: Any) -> None:
        seen.append((flw.name, run.state, state.name))

    @flow(on_running=[started])
    def nightly() -> int:
        seen.append(("body", "", ""))
        return 1

    assert nightly() == 1
    assert seen == [("nightly", "RUNNING", "Running"), ("body", "", "")]


def test_task_decorator_hooks_register_and_return_the_function() -> None:
    calls: list[str] = []

    @task
    def succeeds() -> int:
        return 1

    @task
    def fails() -> int:
        raise ValueError("no")

    def on_done(tsk: Any, run: Any, state: Any) -> None:
        calls.append(f"completed {tsk.name} {state.name}")

    def on_fail(tsk: Any, run: Any, state: Any) -> None:
        calls.append(f"failed {tsk.name} {state.name}")

    assert succeeds.on_completion(on_done) is on_done
    assert fails.on_failure(on_fail) is on_fail
    assert succeeds.on_running(on_done) is on_done

    @flow
    def pipeline() -> None:
        succeeds()
        fails(return_state=True)

    pipeline()
    assert calls == [
        "completed succeeds Running",
        "completed succeeds Completed",
        "failed fails Failed",
    ]


def test_flow_decorator_hooks_for_each_final_state() -> None:
    calls: list[str] = []

    def record(kind: str) -> Any:
        def hook(flw: Any, run: Any, state: Any) -> None:
            calls.append(f"{kind} {flw.name} {state.name}")

        return hook

    @flow
    def good() -> int:
        return 1

    @flow
    def bad() -> None:
        raise ValueError("broken")

    @flow
    def stopped() -> None:
        raise CancelledRun("stop")

    @flow
    def dies() -> None:
        raise SystemExit(2)

    completion, failure = record("completion"), record("failure")
    cancellation, crashed, running = record("cancellation"), record("crashed"), record("running")
    assert good.on_completion(completion) is completion
    assert good.on_running(running) is running
    assert bad.on_failure(failure) is failure
    assert stopped.on_cancellation(cancellation) is cancellation
    assert dies.on_crashed(crashed) is crashed

    good()
    bad(return_state=True)
    stopped(return_state=True)
    with pytest.raises(SystemExit):
        dies()
    assert last_run().state == "CRASHED"
    assert calls == [
        "running good Running",
        "completion good Completed",
        "failure bad Failed",
        "cancellation stopped Cancelled",
        "crashed dies Crashed",
    ]


def test_with_options_keeps_on_running_hooks() -> None:
    calls: list[str] = []

    @task(on_running=[lambda t, r, s: calls.append(t.name)])
    def work() -> None: ...

    renamed = work.with_options(name="renamed")

    @flow
    def pipeline() -> None:
        renamed()

    pipeline()
    assert calls == ["renamed"]
