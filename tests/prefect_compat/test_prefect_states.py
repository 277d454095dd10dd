"""States as Prefect 3 documents them ("Manage states", `prefect.states`, `prefect.exceptions`):
types and names, the constructors, states returned by tasks and flows, `result()`, and the
exceptions raised. Checked against Prefect 3.9.1; only the imports are changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, task
from orchlite.exceptions import (
    CancelledRun,
    FailedRun,
    MissingResult,
    ParameterTypeError,
    PausedRun,
    UnfinishedRun,
    UpstreamTaskError,
)
from orchlite.logging import setup_logging
from orchlite.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    TimedOut,
)
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def task_runs() -> dict[str, Any]:
    return {run.name: run for run in store().task_runs(last_run().id)}


def test_state_types_are_prefects_nine() -> None:
    assert {t.value for t in StateType} == {
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "PAUSED",
        "COMPLETED",
        "FAILED",
        "CRASHED",
        "CANCELLING",
        "CANCELLED",
    }


@pytest.mark.parametrize(
    ("constructor", "state_type", "name"),
    [
        (Scheduled, StateType.SCHEDULED, "Scheduled"),
        (Late, StateType.SCHEDULED, "Late"),
        (AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
        (Pending, StateType.PENDING, "Pending"),
        (Running, StateType.RUNNING, "Running"),
        (Retrying, StateType.RUNNING, "Retrying"),
        (Paused, StateType.PAUSED, "Paused"),
        (Completed, StateType.COMPLETED, "Completed"),
        (Cached, StateType.COMPLETED, "Cached"),
        (Failed, StateType.FAILED, "Failed"),
        (TimedOut, StateType.FAILED, "TimedOut"),
        (Crashed, StateType.CRASHED, "Crashed"),
        (Cancelled, StateType.CANCELLED, "Cancelled"),
    ],
)
def test_constructors_give_prefects_type_and_name(
    constructor: Any, state_type: StateType, name: str
) -> None:
    state = constructor(message="why")
    assert (state.type, state.name, state.message) == (state_type, name, "why")
    assert constructor(name="Custom").name == "Custom"


def test_result_of_states_built_by_hand() -> None:
    assert Completed(data=3).result() == 3
    with pytest.raises(MissingResult):
        Completed().result()
    with pytest.raises(UnfinishedRun, match="PENDING"):
        Pending().result()
    with pytest.raises(PausedRun):
        Paused().result()
    with pytest.raises(FailedRun, match="m"):
        Failed(message="m").result()
    error = Failed(message="m").result(raise_on_failure=False)
    assert isinstance(error, FailedRun) and str(error) == "m"
    value_error = ValueError("v")
    assert Failed(data=value_error).result(raise_on_failure=False) is value_error
    with pytest.raises(CancelledRun):
        Cancelled().result()


def test_a_task_that_returns_a_failed_state_ends_in_it() -> None:
    @task
    def refuses() -> State[int]:
        return Failed(message="task said no")

    @flow
    def pipeline() -> tuple[StateType, str, str | None]:
        state = refuses(return_state=True)
        return state.type, state.name, state.message

    assert pipeline() == (StateType.FAILED, "Failed", "task said no")
    assert last_run().state == "COMPLETED"  # the flow neither returned nor raised it
    run = task_runs()["refuses-0"]
    assert (run.state, run.state_message) == ("FAILED", "task said no")


def test_a_task_that_returns_a_completed_state_gives_its_data() -> None:
    @task
    def fine() -> State[int]:
        return Completed(message="all good", data=5)

    @flow
    def pipeline() -> int:
        return fine() + 1

    assert pipeline() == 6
    run = task_runs()["fine-0"]
    assert (run.state, run.state_message) == ("COMPLETED", "all good")


def test_a_custom_name_is_kept_on_the_state_and_recorded_with_its_type() -> None:
    @task
    def rejects() -> State[Any]:
        return Failed(message="bad row", name="Rejected")

    @task
    def skips() -> State[Any]:
        return Cancelled(message="nothing to do", name="Skipped")

    @flow
    def pipeline() -> tuple[str, str]:
        return rejects(return_state=True).name, skips(return_state=True).name

    assert pipeline() == ("Rejected", "Skipped")
    runs = task_runs()
    assert (runs["rejects-0"].state, runs["rejects-0"].state_message) == (
        "FAILED",
        "Rejected: bad row",
    )
    assert (runs["skips-0"].state, runs["skips-0"].state_message) == ("SKIPPED", "nothing to do")


def test_a_task_that_returns_an_unfinished_state_fails_and_its_result_is_unfinished() -> None:
    @task
    def not_yet() -> State[Any]:
        return Pending(message="later")

    @flow
    def pipeline() -> None:
        not_yet()

    with pytest.raises(UnfinishedRun):
        pipeline()
    assert task_runs()["not_yet-0"].state == "FAILED"


def test_a_cache_hit_is_a_completed_type_named_cached() -> None:
    @task(cache_key_fn=lambda context, parameters: "fixed")
    def cached(x: int) -> int:
        return x

    @flow
    def pipeline() -> list[State[int]]:
        return [cached(1, return_state=True), cached(1, return_state=True)]

    first, second = pipeline()
    assert (first.type, first.name) == (StateType.COMPLETED, "Completed")
    assert (second.type, second.name) == (StateType.COMPLETED, "Cached")
    assert second.type == StateType.COMPLETED and second.is_completed()
    assert [run.state for run in task_runs().values()] == ["COMPLETED", "CACHED"]


def test_a_timed_out_task_is_a_failed_type_named_timed_out() -> None:
    @task(timeout_seconds=0.5)
    def hangs() -> None:
        time.sleep(5)

    @flow
    def pipeline() -> State[None]:
        return hangs(return_state=True)

    state = pipeline(return_state=True).data
    assert (state.type, state.name) == (StateType.FAILED, "TimedOut")
    assert state.is_failed()
    assert task_runs()["hangs-0"].state == "TIMED_OUT"


def test_a_failed_flow_raises_the_tasks_exception_or_returns_its_state() -> None:
    @task
    def boom() -> None:
        raise KeyError("missing")

    @flow
    def pipeline() -> None:
        boom()

    with pytest.raises(KeyError, match="missing"):
        pipeline()
    state = pipeline(return_state=True)
    assert state.is_failed() and state.type is StateType.FAILED
    assert isinstance(state.result(raise_on_failure=False), KeyError)
    with pytest.raises(KeyError):
        state.result()


def test_a_flow_that_returns_a_state_gets_it() -> None:
    @flow
    def cancels() -> State[Any]:
        return Cancelled(message="not today")

    state = cancels(return_state=True)
    assert (state.type, state.message) == (StateType.CANCELLED, "not today")
    run = last_run()
    assert (run.state, run.state_message) == ("CANCELLED", "not today")
    with pytest.raises(CancelledRun):
        cancels()


def test_an_upstream_failure_is_an_upstream_task_error() -> None:
    @task
    def broken() -> int:
        raise ValueError("no")

    @task
    def after(x: int) -> int:
        return x

    @flow
    def pipeline() -> BaseException:
        return after(broken.submit(), return_state=True).result(raise_on_failure=False)

    assert isinstance(pipeline(), UpstreamTaskError)


def test_bad_flow_parameters_raise_parameter_type_error() -> None:
    @flow
    def typed(n: int) -> int:
        return n

    with pytest.raises(ParameterTypeError):
        typed("not a number")  # type: ignore[arg-type]
