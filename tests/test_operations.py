"""`orchlite.operations`: the checks and messages `orch` and the TUI share, against a real
store in a temporary project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchlite import operations
from orchlite.discovery import FlowInfo
from orchlite.errors import ParameterError, UsageError
from orchlite.states import StateName
from orchlite.store import Store

PARENT = "a" * 32
CHILD = "b" * 32


def _run(
    store: Store,
    run_id: str,
    state: StateName,
    *,
    target: str | None = "flows.py:etl",
    parent: str | None = None,
    retry_of: str | None = None,
) -> None:
    store.create_flow_run(
        run_id=run_id,
        flow_name="etl",
        name=f"run-{run_id[:4]}",
        parameters=json.dumps({"day": "mon"}),
        state=state,
        target=target,
        parent_run_id=parent,
        retry_of=retry_of,
    )


@pytest.fixture
def store(orch_home: Path) -> Iterator[Store]:
    opened = Store(orch_home)
    yield opened
    opened.close()


def test_a_subflow_is_retried_through_its_parent(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.FAILED)
    _run(store, CHILD, StateName.FAILED, parent=PARENT)
    with pytest.raises(UsageError) as caught:
        operations.retry_plan(orch_home, CHILD)
    assert str(caught.value) == "run bbbbbbbb is a subflow; retry its parent run aaaaaaaa"


def test_a_run_without_a_target_cannot_be_retried(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.FAILED, target=None)
    with pytest.raises(UsageError) as caught:
        operations.retry_plan(orch_home, PARENT)
    assert str(caught.value) == "run aaaaaaaa has no recorded target to run again"


def test_a_completed_run_is_retried_only_when_forced(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.COMPLETED)
    with pytest.raises(UsageError) as caught:
        operations.retry_plan(orch_home, PARENT, force=False)
    assert str(caught.value) == "run aaaaaaaa completed; pass --force to run it again"
    plan = operations.retry_plan(orch_home, PARENT, {"day": "tue"})
    assert plan.completed
    request = plan.request
    assert (request.target, request.params, request.resume_from, request.trigger) == (
        "flows.py:etl",
        {"day": "tue"},
        PARENT,
        "retry",
    )
    assert request.env == {}  # started by hand: no entry's env


def test_a_finished_run_has_nothing_to_cancel(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.COMPLETED)
    with pytest.raises(UsageError) as caught:
        operations.check_cancellable(orch_home, PARENT)
    assert str(caught.value) == "run aaaaaaaa already finished COMPLETED: nothing to cancel"
    with pytest.raises(UsageError) as caught:
        operations.cancel(orch_home, PARENT, wait_seconds=0)
    assert str(caught.value) == "run aaaaaaaa already ended COMPLETED"  # `orch cancel`'s words


def test_a_pending_run_is_cancelled(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.PENDING)
    operations.check_cancellable(orch_home, PARENT)
    outcome = operations.cancel(orch_home, PARENT, wait_seconds=0)
    assert outcome.ok and outcome.message.startswith("Run aaaaaaaa CANCELL")
    assert store.get_flow_run(PARENT).state in ("CANCELLED", "CANCELLING")


def test_run_now_refuses_a_target_that_is_not_a_flow(tmp_path: Path, orch_home: Path) -> None:
    (tmp_path / "jobs.py").write_text("def plain(day: str) -> str:\n    return day\n")
    info = FlowInfo(name="plain", function="plain", file=Path("jobs.py"), line=1, parameters=())
    with pytest.raises(UsageError) as caught:
        operations.run_now_request(orch_home, info, {"day": "mon"})
    assert str(caught.value) == "jobs.py:plain is not a flow (decorate it with @flow)"


def test_run_now_checks_the_typed_parameters(tmp_path: Path, orch_home: Path) -> None:
    (tmp_path / "jobs.py").write_text(
        "from orchlite import flow\n\n@flow\ndef etl(day: str) -> str:\n    return day\n"
    )
    info = FlowInfo(name="etl", function="etl", file=Path("jobs.py"), line=3, parameters=())
    request = operations.run_now_request(orch_home, info, {"day": "mon"})
    assert (request.target, request.params) == ("jobs.py:etl", {"day": "mon"})
    with pytest.raises(UsageError, match="hour"):
        operations.run_now_request(orch_home, info, {"day": "mon", "hour": "3"})


ETL = "from orchlite import flow\n\n@flow\ndef etl(day: str, n: int = 1) -> str:\n    return day\n"


def test_a_rerun_is_a_retry_or_a_fresh_run_checked_like_orch_run(
    tmp_path: Path, orch_home: Path, store: Store
) -> None:
    (tmp_path / "flows.py").write_text(ETL)
    _run(store, PARENT, StateName.COMPLETED)
    plan = operations.rerun_request(orch_home, PARENT, {"n": "2"}, retry=True)
    retry = plan.request
    assert plan.completed
    assert (retry.target, retry.resume_from, retry.trigger) == ("flows.py:etl", PARENT, "retry")
    assert retry.params == {"day": "mon", "n": "2"}  # over the recorded ones
    plan = operations.rerun_request(orch_home, PARENT, {"n": "2"}, retry=False)
    fresh = plan.request
    assert not plan.completed
    assert (fresh.target, fresh.resume_from, fresh.trigger) == ("flows.py:etl", None, "manual")
    assert fresh.params == {"day": "mon", "n": "2"}
    with pytest.raises(ParameterError) as caught:
        operations.rerun_request(orch_home, PARENT, {"n": "two"}, retry=False)
    assert str(caught.value) == "parameter 'n': expected int, got 'two'"
    assert caught.value.names == ("n",)


def test_a_rerun_never_sends_a_redacted_value(
    tmp_path: Path, orch_home: Path, store: Store
) -> None:
    (tmp_path / "flows.py").write_text(ETL)
    store.create_flow_run(
        run_id=PARENT,
        flow_name="etl",
        name="etl-1",
        parameters=json.dumps({"day": "user:***@host", "n": 1}),
        state=StateName.FAILED,
        target="flows.py:etl",
    )
    for values in ({}, {"n": "2"}, {"day": "user:***@db"}):
        for retry in (True, False):
            with pytest.raises(ParameterError) as caught:
                operations.rerun_request(orch_home, PARENT, values, retry=retry)
            assert caught.value.names == ("day",)
            assert "'day' was recorded redacted (***): type its value again" in str(caught.value)
    plan = operations.rerun_request(orch_home, PARENT, {"day": "user:pw@host"}, retry=True)
    assert plan.request.params == {"day": "user:pw@host", "n": 1}


def test_a_command_is_rerun_without_parameters(orch_home: Path, store: Store) -> None:
    store.create_flow_run(
        run_id=PARENT,
        flow_name="backup",
        name="backup-1",
        parameters="{}",
        state=StateName.FAILED,
        target="$ echo backup",
    )
    request = operations.rerun_request(orch_home, PARENT, {}, retry=False).request
    assert (request.target, request.params) == ("$ echo backup", {})
    with pytest.raises(UsageError, match="a command takes no parameters: day"):
        operations.rerun_request(orch_home, PARENT, {"day": "mon"}, retry=False)


def test_only_a_paused_run_can_be_resumed(orch_home: Path, store: Store) -> None:
    _run(store, PARENT, StateName.RUNNING)
    with pytest.raises(UsageError) as caught:
        operations.resume_fields(orch_home, PARENT)
    assert str(caught.value) == "run aaaaaaaa is RUNNING, not PAUSED"


def test_a_retry_gets_the_env_of_the_schedule_that_started_the_run(
    tmp_path: Path, orch_home: Path, store: Store
) -> None:
    (tmp_path / "flows.py").write_text("from orchlite import flow\n\n@flow\ndef etl():\n    pass\n")
    (tmp_path / "orch.toml").write_text(
        '[[schedule]]\nname = "nightly"\ntarget = "flows.py:etl"\ncron = "0 3 * * *"\n'
        'env = { GREETING = "hi" }\n'
    )
    from orchlite.schedule_control import find_schedule

    _name, entry = find_schedule(tmp_path, "nightly")
    _run(store, PARENT, StateName.FAILED)
    store.record_started_by(PARENT, entry.key, "nightly", 1_000.0)
    assert operations.retry_plan(orch_home, PARENT).request.env == {"GREETING": "hi"}
    # A retry of that retry is traced back to the run the schedule started.
    _run(store, CHILD, StateName.FAILED, retry_of=PARENT)
    assert operations.retry_plan(orch_home, CHILD).request.env == {"GREETING": "hi"}
    # Once the schedule no longer declares it, there is nothing to add.
    (tmp_path / "orch.toml").write_text(
        '[[schedule]]\nname = "nightly"\ntarget = "flows.py:etl"\ncron = "0 3 * * *"\n'
    )
    assert operations.retry_plan(orch_home, CHILD).request.env == {}
