"""Flow runs in the store: recording, adopting, moving through states, finding and listing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchlite.errors import RunNotFoundError, StoreError, UsageError
from orchlite.states import StateName
from orchlite.store import Store, StoredResult
from tests.helpers.store_rows import flow_run, task_run

RUN = "aa" * 16
OTHER = "ab" * 16


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".orch") as store:
        yield store


def test_a_waiting_run_is_adopted_and_a_started_one_refused(store: Store) -> None:
    flow_run(store, RUN, StateName.SCHEDULED, target="f.py:f", now=1.0)
    store.create_flow_run(
        run_id=RUN, flow_name="g", name="g-1", parameters='{"x": 1}', pid=99, host="h", now=2.0
    )
    run = store.get_flow_run(RUN)
    assert (run.flow_name, run.name, run.target, run.parameters, run.state, run.pid) == (
        "g",
        "g-1",
        "f.py:f",  # kept: none given
        '{"x": 1}',
        "PENDING",
        99,
    )
    assert [h.state for h in store.history(RUN)] == ["SCHEDULED", "PENDING"]
    store.set_flow_run_state(RUN, StateName.RUNNING)
    with pytest.raises(StoreError, match="already started"):
        flow_run(store, RUN)


def test_a_move_that_is_not_allowed_writes_nothing(store: Store) -> None:
    flow_run(store, RUN)
    assert store.set_flow_run_state(RUN, StateName.COMPLETED, "done", now=5.0)
    assert not store.set_flow_run_state(RUN, StateName.RUNNING)
    run = store.get_flow_run(RUN)
    assert (run.state, run.state_message, run.ended) == ("COMPLETED", "done", 5.0)
    assert [h.state for h in store.history(RUN)] == ["PENDING", "COMPLETED"]
    with pytest.raises(RunNotFoundError):
        store.set_flow_run_state(OTHER, StateName.RUNNING)


def test_a_flow_run_that_ends_ends_its_unfinished_task_runs(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    store.save_task_run(task_run(RUN, 0), [("COMPLETED", None, 2.0)])
    store.save_task_run(task_run(RUN, 1, "RUNNING"), [("RUNNING", None, 3.0)])
    store.set_flow_run_state(RUN, StateName.TIMED_OUT, "took too long", now=4.0)
    states = [(t.position, t.state, t.state_message) for t in store.task_runs(RUN)]
    assert states == [(0, "COMPLETED", None), (1, "CANCELLED", "took too long")]
    assert store.history(RUN, 1)[-1].state == "CANCELLED"


def test_the_result_and_the_stopping_runs_are_read_back(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    flow_run(store, OTHER, StateName.RUNNING)
    stored = StoredResult("json", b"[1]", None, "[1]")
    store.set_flow_run_state(RUN, StateName.COMPLETED, result=stored)
    assert store.flow_run_result(RUN) == stored
    assert store.flow_run_result(OTHER) is None
    assert store.request_cancel(OTHER)
    assert store.stopping([RUN, OTHER, "cc" * 16]) == {RUN: "COMPLETED", OTHER: "CANCELLING"}
    assert not store.request_cancel(RUN)  # it has ended


def test_a_retry_claims_its_run_once(store: Store) -> None:
    flow_run(store, RUN, StateName.FAILED)
    flow_run(store, "b1" * 16, retry_of=RUN)
    with pytest.raises(UsageError, match="already being retried"):
        flow_run(store, "b2" * 16, retry_of=RUN)
    store.set_flow_run_state("b1" * 16, StateName.FAILED)
    flow_run(store, "b2" * 16, retry_of=RUN)  # the first retry ended
    with pytest.raises(RunNotFoundError, match="no longer exists"):
        flow_run(store, "b3" * 16, retry_of="ee" * 16)


def test_a_run_is_found_by_last_or_by_a_unique_prefix(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no runs"):
        store.resolve_run_id("last")
    flow_run(store, RUN, now=1.0)
    flow_run(store, OTHER, now=2.0)
    flow_run(store, "cc" * 16, parent_run_id=RUN, now=3.0)  # a subflow run is never "last"
    assert store.resolve_run_id(" last ") == OTHER
    assert store.resolve_run_id("AA") == RUN
    with pytest.raises(RunNotFoundError, match="several runs"):
        store.resolve_run_id("a")
    with pytest.raises(RunNotFoundError, match="hexadecimal"):
        store.resolve_run_id("zz")
    with pytest.raises(RunNotFoundError, match="no run matches"):
        store.resolve_run_id("dd")


def test_runs_are_listed_newest_first_and_paged_by_key(store: Store) -> None:
    ids = [f"{i:032x}" for i in range(5)]
    for i, run_id in enumerate(ids):
        flow_run(store, run_id, name=f"run {i}%", now=float(i // 2))  # ties on created
    newest = [r.id for r in store.flow_runs_page()]
    assert newest == list(reversed(ids))
    first = store.flow_runs_page(limit=2)
    last = first[-1]
    rest = store.flow_runs_page(before=(last.created, last.id))
    assert [r.id for r in first + rest] == newest
    assert [r.id for r in store.flow_runs_page(down_to=(last.created, last.id))] == newest[:2]
    assert [r.id for r in store.list_flow_runs(limit=3)] == newest[:3]
    assert [r.id for r in store.list_flow_runs(flow="g")] == []


def test_a_text_filter_matches_its_text_literally(store: Store) -> None:
    flow_run(store, RUN, name="at 100%")
    flow_run(store, OTHER, name="at 1000")
    assert [r.id for r in store.flow_runs_page(text="0%")] == [RUN]
    assert [r.id for r in store.flow_runs_page(text="AT 1000")] == [OTHER]


def test_runs_are_filtered_and_counted_by_states_tags_and_time_in_the_query(
    store: Store,
) -> None:
    runs = {
        "1" * 32: ("etl", StateName.FAILED, ["nightly", "eu"], 100.0),
        "2" * 32: ("etl", StateName.CRASHED, ["nightly"], 200.0),
        "3" * 32: ("report", StateName.COMPLETED, ["nightly", "eu"], 300.0),
        "4" * 32: ("report", StateName.FAILED, [], 400.0),
    }
    for run_id, (flow, state, tags, created) in runs.items():
        flow_run(store, run_id, state, flow_name=flow, tags=json.dumps(tags), now=created)

    def ids(**filters: Any) -> list[str]:
        found = [r.id[0] for r in store.flow_runs_page(**filters)]
        assert store.count_flow_runs(**filters) == len(found)
        return found

    assert ids() == ["4", "3", "2", "1"]
    assert ids(state=["FAILED", "CRASHED"]) == ["4", "2", "1"]
    assert ids(state="FAILED", flow=["etl"]) == ["1"]
    assert ids(tags=["nightly"]) == ["3", "2", "1"]
    assert ids(tags=["eu", "nightly"]) == ["3", "1"]  # every one of them
    assert ids(tags=["eu", "nightly", "us"]) == []
    assert ids(since=200.0) == ["4", "3", "2"]  # at or after
    assert ids(until=300.0) == ["2", "1"]  # before
    assert ids(since=150.0, until=350.0, state=["FAILED", "CRASHED"]) == ["2"]
    assert ids(text="ETL", tags=["eu"]) == ["1"]
    assert ids(state=[]) == []  # none of no states


def test_latest_runs_per_flow_and_unfinished_runs(store: Store) -> None:
    for i, (flow, state) in enumerate(
        [("a", StateName.COMPLETED), ("b", StateName.RUNNING), ("a", StateName.SCHEDULED)]
    ):
        flow_run(store, f"{i:032x}", state, flow_name=flow, now=float(i))
    latest = store.latest_runs_per_flow(flows=2, runs=5)
    assert [[r.id for r in runs] for runs in latest] == [[f"{2:032x}", f"{0:032x}"], [f"{1:032x}"]]
    assert sorted(r.id for r in store.unfinished_flow_runs()) == [f"{1:032x}", f"{2:032x}"]


def test_heartbeat_and_retry_policy_are_kept_on_the_run(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    store.heartbeat([RUN], now=42.0)
    store.set_retry_policy(RUN, '{"retries": 2}')
    assert store.get_flow_run(RUN).heartbeat == 42.0
    assert store.retry_policy(RUN) == '{"retries": 2}'
    assert store.retry_policy(OTHER) is None and store.prior_attempts(OTHER) == 0
