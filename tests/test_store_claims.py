"""What the daemon claims in the store: schedule slots, trigger runs and retries, each once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchlite.errors import RunNotFoundError
from orchlite.states import StateName
from orchlite.store import Store
from tests.helpers.store_rows import flow_run

RUN = "aa" * 16
KEY = "schedule:f"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".orch") as store:
        yield store


def _slot(store: Store, run_id: str, slot: float, skip: str | None = None) -> bool:
    return store.claim_slot(
        run_id=run_id,
        key=KEY,
        slot=slot,
        flow_name="f",
        name="f-slot",
        target="f.py:f",
        parameters='{"n": 1}',
        skip_reason=skip,
        now=slot + 0.5,
    )


def test_a_slot_is_claimed_once_and_moves_the_mark(store: Store) -> None:
    assert store.schedule_mark(KEY, now=5.0) == 5.0  # a new key starts at now
    assert _slot(store, RUN, 10.0)
    assert not _slot(store, RUN, 10.0)  # claimed before: by another daemon, or a restart
    run = store.get_flow_run(RUN)
    assert (run.state, run.trigger, run.target, run.parameters) == (
        "SCHEDULED",
        "schedule",
        "f.py:f",
        '{"n": 1}',
    )
    assert store.schedule_mark(KEY, now=99.0) == 10.0
    assert store.slot_key(RUN) == KEY
    assert [(s.run_id, s.slot, s.state) for s in store.waiting_slots()] == [
        (RUN, 10.0, "SCHEDULED")
    ]


def test_a_skipped_slot_is_recorded_skipped_and_does_not_wait(store: Store) -> None:
    assert _slot(store, RUN, 10.0)
    assert _slot(store, "bb" * 16, 20.0, skip="the run of 10.0 is still going")
    skipped = store.get_flow_run("bb" * 16)
    assert (skipped.state, skipped.state_message) == ("SKIPPED", "the run of 10.0 is still going")
    assert [s.run_id for s in store.waiting_slots()] == [RUN]
    assert store.last_slot_runs()[KEY].run_id == "bb" * 16


def test_a_trigger_run_is_claimed_once_at_its_time(store: Store) -> None:
    def claim() -> bool:
        return store.claim_trigger_run(
            run_id=RUN,
            key="trigger:f",
            flow_name="f",
            name="f-trig",
            target="f.py:f",
            parameters="{}",
            trigger="file",
            message="a.csv changed",
            now=7.0,
        )

    assert claim()
    assert not claim()
    run = store.get_flow_run(RUN)
    assert (run.state, run.state_message, run.trigger) == ("SCHEDULED", "a.csv changed", "file")
    assert [(s.key, s.slot) for s in store.waiting_slots()] == [("trigger:f", 7.0)]
    store.move_trigger_mark("trigger:f", 9.0, now=9.0)
    store.move_trigger_mark("trigger:f", 8.0, now=10.0)  # never back
    assert store.schedule_mark("trigger:f", now=11.0) == 9.0


def _retry(store: Store, run_id: str, retry_of: str = RUN) -> bool:
    return store.claim_retry_run(
        run_id=run_id,
        retry_of=retry_of,
        key="retry:f",
        due=30.0,
        prior_attempts=2,
        message="attempt 3 of 4",
        now=20.0,
    )


def test_a_retry_is_claimed_as_the_same_flow_once(store: Store) -> None:
    flow_run(store, RUN, StateName.CRASHED, target="f.py:f", trigger="schedule")
    assert _retry(store, "bb" * 16)
    assert not _retry(store, "bb" * 16)
    retry = store.get_flow_run("bb" * 16)
    assert (retry.flow_name, retry.target, retry.trigger, retry.retry_of, retry.state) == (
        "f",
        "f.py:f",
        "retry",
        RUN,
        "SCHEDULED",
    )
    assert store.prior_attempts("bb" * 16) == 2
    assert [(s.run_id, s.slot) for s in store.waiting_slots()] == [("bb" * 16, 30.0)]
    assert store.unretried_runs(["CRASHED"], ["schedule"], since=0.0) == []


def test_a_run_retried_by_hand_is_not_claimed_again(store: Store) -> None:
    flow_run(store, RUN, StateName.CRASHED)
    flow_run(store, "cc" * 16, retry_of=RUN)  # `orch retry`, still going
    assert not _retry(store, "bb" * 16)
    with pytest.raises(RunNotFoundError):
        store.get_flow_run("bb" * 16)


def test_unretried_runs_and_ended_runs_are_found_by_their_end(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING, trigger="schedule")
    store.set_retry_policy(RUN, '{"retries": 1}')
    store.set_flow_run_state(RUN, StateName.CRASHED, now=50.0)
    assert store.unretried_runs(["CRASHED"], ["schedule"], since=40.0) == [RUN]
    assert store.unretried_runs(["CRASHED"], ["manual"], since=40.0) == []
    assert store.unretried_runs(["CRASHED"], ["schedule"], since=60.0) == []
    assert [r.id for r in store.ended_flow_runs(["f"], ["CRASHED"], since=50.0)] == [RUN]
    assert store.ended_flow_runs(["f"], ["COMPLETED"], since=0.0) == []
    assert store.ended_flow_runs([], ["CRASHED"], since=0.0) == []
