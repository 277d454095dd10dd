"""The run detail's follower: each poll finds the task runs that changed by their progress,
read from the first one that may still change, and misses none, even those that a flow
run's next attempt runs again."""

from __future__ import annotations

from pathlib import Path

from orchlite.states import StateName
from orchlite.store import Store, TaskRunSave
from orchlite.tui.run_reader import DetailFollower
from tests.helpers.store_rows import flow_run, task_run

RUN = "a" * 32


def started_run(store: Store, finished: int, running: int) -> None:
    """RUN, RUNNING since 100.0: `finished` task runs COMPLETED, then `running` RUNNING."""
    flow_run(store, RUN, StateName.RUNNING, now=100.0)
    saves = [
        TaskRunSave(task_run(RUN, p, "COMPLETED" if p < finished else "RUNNING"), [])
        for p in range(finished + running)
    ]
    assert store.save_task_runs(saves) == [None] * len(saves)


def changed(follower: DetailFollower, store: Store) -> list[tuple[int, str]]:
    return [(t.position, t.state) for t in follower(store).changed or []]


def test_a_poll_reads_from_the_first_task_run_that_has_not_ended(orch_home: Path) -> None:
    with Store(orch_home) as store:
        started_run(store, finished=900, running=100)
        follower = DetailFollower(RUN)
        assert len(follower(store).tasks) == 1_000
        assert follower.settled == 900
        store.save_task_run(task_run(RUN, 950, "FAILED"), [("FAILED", "bad", 200.0)])
        store.save_task_run(task_run(RUN, 900, "COMPLETED"), [("COMPLETED", None, 201.0)])
        assert changed(follower, store) == [(900, "COMPLETED"), (950, "FAILED")]
        assert follower.settled == 901
        assert changed(follower, store) == []


def test_a_subflow_between_task_runs_does_not_hold_the_poll_back(orch_home: Path) -> None:
    child = "c" * 32
    with Store(orch_home) as store:
        started_run(store, finished=2, running=0)
        flow_run(store, child, StateName.RUNNING, parent_run_id=RUN, parent_position=2)
        store.save_task_run(task_run(RUN, 3, "RUNNING"), [("RUNNING", None, 103.0)])
        follower = DetailFollower(RUN)
        follower(store)
        assert follower.settled == 3


def test_a_task_run_that_the_flow_runs_next_attempt_runs_again_is_seen(
    orch_home: Path,
) -> None:
    with Store(orch_home) as store:
        started_run(store, finished=3, running=0)
        follower = DetailFollower(RUN)
        follower(store)
        assert follower.settled == 3
        store.set_flow_run_state(RUN, StateName.RETRYING, "attempt 1 failed", now=110.0)
        store.set_flow_run_state(RUN, StateName.RUNNING, attempts=2, now=111.0)
        assert [e.state for e in follower(store).history] == ["RUNNING", "RETRYING", "RUNNING"]
        assert follower.settled == 0  # ended in the earlier attempt: they may run again
        again = task_run(RUN, 0, "RUNNING", created=112.0, started=112.0)
        store.save_task_run(again, [("PENDING", None, 112.0), ("RUNNING", None, 112.0)])
        assert changed(follower, store) == [(0, "RUNNING")]
        done = task_run(RUN, 0, "COMPLETED", created=112.0, started=112.0, ended=113.0)
        store.save_task_run(done, [("COMPLETED", None, 113.0)])
        assert changed(follower, store) == [(0, "COMPLETED")]
        assert follower.settled == 1


def test_once_the_flow_run_has_ended_a_poll_reads_no_task_run(orch_home: Path) -> None:
    with Store(orch_home) as store:
        started_run(store, finished=1, running=2)
        follower = DetailFollower(RUN)
        follower(store)
        store.set_flow_run_state(RUN, StateName.CRASHED, "gone", now=120.0)
        assert changed(follower, store) == [(1, "CRASHED"), (2, "CRASHED")]
        assert follower.settled == 3
        assert store.task_run_progress(RUN, follower.settled) == []


def test_a_task_runs_retry_is_marked_from_its_history(orch_home: Path) -> None:
    with Store(orch_home) as store:
        started_run(store, finished=0, running=1)
        follower = DetailFollower(RUN)
        follower(store)
        retry = task_run(RUN, 0, "RUNNING", attempts=2)
        store.save_task_run(retry, [("AwaitingRetry", "ValueError", 104.0)])
        store.save_task_run(retry, [("RUNNING", "attempt 2", 105.0)])
        detail = follower(store)
    assert detail.retried == {retry.id: 105.0}
