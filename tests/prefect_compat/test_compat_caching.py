"""Caching is opt-in, as in Prefect 3: a cache policy takes effect only when results persist.

From Prefect's documentation ("Caching", "Results"): results are not persisted by default
(`PREFECT_RESULTS_PERSIST_BY_DEFAULT=false`), the DEFAULT policy only matters once they are,
and setting a `cache_policy` or `cache_key_fn` turns persistence on for that task. Here the
setting is `ORCH_RESULTS_PERSIST_BY_DEFAULT` or `[results] persist_by_default` in orch.toml.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, task
from orchlite.cache_policies import DEFAULT, INPUTS, NO_CACHE
from orchlite.errors import UsageError
from orchlite.logging import setup_logging
from orchlite.tasks import Task
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def _logging() -> None:
    setup_logging(console=False)


def five_calls(**options: Any) -> tuple[list[int], Task[[int], int]]:
    """A task that counts its executions, and its options."""
    executions: list[int] = []

    @task(**options)
    def send_email(to: int) -> int:
        executions.append(to)
        return to

    return executions, send_email


def run_five(work: Task[[int], int], **flow_options: Any) -> list[str]:
    """Call `work(7)` five times in one flow run; the task runs' recorded states."""

    @flow(**flow_options)
    def notify() -> int:
        return sum(work(7) for _ in range(5))

    assert notify() == 35
    return [t.state for t in store().task_runs(last_run().id)]


def test_identical_calls_execute_every_time_by_default() -> None:
    executions, work = five_calls()
    assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 5
    assert [t.cache_key for t in store().task_runs(last_run().id)] == [None] * 5
    assert store().list_cache_entries() == []


@pytest.mark.parametrize(
    "options",
    [
        {"cache_policy": INPUTS},
        {"cache_policy": DEFAULT},
        {"persist_result": True},
        {"cache_key_fn": lambda context, parameters: str(parameters["to"])},
        {"result_serializer": "json"},
    ],
    ids=["cache_policy", "explicit-default", "persist_result", "cache_key_fn", "serializer"],
)
def test_asking_for_caching_executes_once(options: dict[str, Any]) -> None:
    executions, work = five_calls(**options)
    assert run_five(work) == ["COMPLETED"] + ["CACHED"] * 4
    assert executions == [7]


def test_no_cache_policy_never_caches_even_when_persisted() -> None:
    executions, work = five_calls(cache_policy=NO_CACHE, persist_result=True)
    assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 5


def test_persist_result_on_the_flow_is_inherited_by_its_tasks_and_subflows() -> None:
    executions, work = five_calls()
    assert run_five(work, persist_result=True) == ["COMPLETED"] + ["CACHED"] * 4
    assert run_five(work, result_serializer="json") == ["COMPLETED"] + ["CACHED"] * 4

    @flow
    def child() -> int:
        return work(7) + work(7)

    @flow(persist_result=True)
    def parent() -> int:
        return child()

    executions.clear()
    assert parent() == 14
    assert executions == [7]  # DEFAULT holds the run id: the subflow's own first call runs


def test_a_task_that_says_persist_result_false_is_not_cached_in_a_persisting_flow() -> None:
    executions, work = five_calls(persist_result=False)
    assert run_five(work, persist_result=True) == ["COMPLETED"] * 5
    assert executions == [7] * 5


def test_persist_result_false_ignores_a_cache_policy_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    executions, work = five_calls(cache_policy=INPUTS, persist_result=False)
    with caplog.at_level(logging.WARNING, logger="orchlite"):
        assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 5
    warnings = [r.getMessage() for r in caplog.records if "ignoring its cache policy" in r.message]
    assert warnings == [
        "Task 'send_email': ignoring its cache policy because persist_result is False"
    ]


def test_cache_expiration_or_refresh_alone_does_not_turn_caching_on() -> None:
    from datetime import timedelta

    executions, work = five_calls(cache_expiration=timedelta(hours=1))
    assert run_five(work) == ["COMPLETED"] * 5
    executions, work = five_calls(refresh_cache=False)
    assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 5


def test_an_unhashable_argument_is_fine_when_caching_is_off() -> None:
    import threading

    @task
    def hold(lock: Any) -> int:
        return 1

    @flow
    def pipeline() -> int:
        return hold(threading.Lock()) + hold(threading.Lock())

    assert pipeline() == 2


def test_the_environment_setting_turns_persistence_and_caching_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_RESULTS_PERSIST_BY_DEFAULT", "true")
    executions, work = five_calls()
    assert run_five(work) == ["COMPLETED"] + ["CACHED"] * 4
    assert executions == [7]
    monkeypatch.setenv("ORCH_RESULTS_PERSIST_BY_DEFAULT", "false")
    assert run_five(work) == ["COMPLETED"] * 5


def test_the_project_file_setting_turns_caching_on_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, orch_home: Path
) -> None:
    (orch_home.parent / "orch.toml").write_text("[results]\npersist_by_default = true\n")
    executions, work = five_calls()
    assert run_five(work) == ["COMPLETED"] + ["CACHED"] * 4
    monkeypatch.setenv("ORCH_RESULTS_PERSIST_BY_DEFAULT", "0")
    assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 6


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        (
            "maybe",
            None,
            "ORCH_RESULTS_PERSIST_BY_DEFAULT must be true or false, not 'maybe'",
        ),
        (
            None,
            '[results]\npersist_by_default = "yes"\n',
            "orch.toml: [results] persist_by_default must be true or false, not 'yes'",
        ),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    orch_home: Path,
    env: str | None,
    toml: str | None,
    message: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("ORCH_RESULTS_PERSIST_BY_DEFAULT", env)
    if toml is not None:
        (orch_home.parent / "orch.toml").write_text(toml)
    executions, work = five_calls()

    @flow
    def once() -> int:
        return work(1)

    with pytest.raises(UsageError) as caught:
        once()
    assert str(caught.value) == message
    assert executions == []


def test_an_unreadable_project_file_leaves_the_default_with_a_warning(
    orch_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (orch_home.parent / "orch.toml").write_text("[results\npersist_by_default = true\n")
    executions, work = five_calls()
    with caplog.at_level(logging.WARNING, logger="orchlite"):
        assert run_five(work) == ["COMPLETED"] * 5
    assert executions == [7] * 5
    assert any(
        r.getMessage().startswith("orch.toml: cannot read:")
        and r.getMessage().endswith("; results are not persisted by default")
        for r in caplog.records
    )
