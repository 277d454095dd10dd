"""The recorder: one commit per task run, held starts made visible, flow runs watched.

Each test uses a `Recorder` of its own against a real store; the background thread is real
too, and the tests wait on what it records rather than sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchlite.recorder import Recorder
from orchlite.states import StateName
from orchlite.store import Store, TaskRun
from tests.helpers import wait_for
from tests.helpers.store_rows import flow_run, task_run

RUN = "f" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".orch") as store:
        flow_run(store, RUN, StateName.RUNNING)
        yield store


def _started(position: int, started: float) -> TaskRun:
    return task_run(RUN, position, "RUNNING", started=started, created=started)


def _states(store: Store, position: int) -> list[str]:
    return [entry.state for entry in store.history(RUN, position)]


def _state(store: Store, position: int) -> str | None:
    runs = {r.position: r for r in store.task_runs(RUN)}
    return runs[position].state if position in runs else None


def test_a_short_task_run_is_written_once_with_its_start(store: Store) -> None:
    recorder = Recorder()
    now = time.time()
    run = _started(0, now)
    recorder.begin(store, run, [("PENDING", None, now), ("RUNNING", None, now)])
    run.state, run.ended = "COMPLETED", now
    recorder.write(store, run, [("COMPLETED", None, now)])
    assert _state(store, 0) == "COMPLETED"
    assert _states(store, 0) == ["PENDING", "RUNNING", "COMPLETED"]


def test_a_task_run_past_the_start_delay_is_shown_running_then_ended_once(
    store: Store,
) -> None:
    recorder = Recorder()
    long_ago = time.time() - 10  # due at the background thread's first tick
    run = _started(1, long_ago)
    recorder.begin(store, run, [("RUNNING", None, long_ago)])
    wait_for(lambda: _state(store, 1) == "RUNNING", timeout=5, what="the held start")
    run.state, run.ended = "FAILED", time.time()
    recorder.write(store, run, [("FAILED", "boom", run.ended)])
    assert _state(store, 1) == "FAILED"
    assert _states(store, 1) == ["RUNNING", "FAILED"]  # the start is not written twice


def test_flush_writes_held_starts_at_once(store: Store) -> None:
    recorder = Recorder()
    now = time.time()
    recorder.begin(store, _started(2, now), [("RUNNING", None, now)])
    recorder.flush()
    assert _state(store, 2) == "RUNNING"


def test_a_tracked_flow_run_is_told_to_stop_and_heartbeats(store: Store) -> None:
    recorder = Recorder()
    assert store.request_cancel(RUN)
    stops: list[str] = []
    recorder.track_flow(store, RUN, stops.append)
    wait_for(lambda: stops, timeout=5, what="the stop request")
    assert stops[0] == "CANCELLING"
    assert store.get_flow_run(RUN).heartbeat is not None
