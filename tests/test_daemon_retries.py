"""Flow-level retries under `orch daemon` that survive a crash of the child or the daemon.

Each test starts `python -m orchlite.cli daemon` in a temporary project, seeds a waiting run
(as a file trigger would) and watches the store.
"""

from __future__ import annotations

import datetime as dt
import textwrap
import time
from pathlib import Path

import pytest

from orchlite.daemon import retry_run_id
from orchlite.daemon.retry_chain import retrying_until
from orchlite.errors import RunNotFoundError, UsageError
from orchlite.states import StateName
from orchlite.store import FlowRun, Store
from tests.helpers import start_daemon, stop_daemon, wait_for
from tests.helpers.daemon import FakeLaunch
from tests.helpers.daemon import runs as _runs

FLOWS = """
import os
import signal
from pathlib import Path

from orchlite import flow

HERE = Path(__file__).parent


def _attempt(name):
    with open(HERE / f"{name}.attempts", "a") as out:
        out.write("x")
    return len((HERE / f"{name}.attempts").read_text())


@flow(retries=1, retry_delay_seconds={delay})
def dies_once():
    if _attempt("dies_once") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "ok"


@flow(retries=1, retry_delay_seconds=0)
def always_dies():
    _attempt("always_dies")
    os.kill(os.getpid(), signal.SIGKILL)


@flow(retries=1, retry_delay_seconds={delay})
def fails_once():
    if _attempt("fails_once") == 1:
        raise ValueError("first attempt fails")
    return "ok"
"""


def _project(root: Path, delay: float) -> None:
    (root / "flows.py").write_text(textwrap.dedent(FLOWS).replace("{delay}", str(delay)))


def _seed(root: Path, flow: str) -> str:
    """A waiting run of `flows.py:flow`, as a file trigger records it."""
    store = Store(root / ".orch")
    run_id = f"seed-{flow}"
    store.claim_trigger_run(
        run_id=run_id,
        key=f"file:{flow}",
        flow_name=flow.replace("_", "-"),
        name=flow,
        target=f"flows.py:{flow}",
        parameters="{}",
        trigger="file",
    )
    store.close()
    return run_id


def _run(root: Path, run_id: str) -> FlowRun | None:
    store = Store(root / ".orch")
    try:
        return next((r for r in store.list_flow_runs(limit=100) if r.id == run_id), None)
    finally:
        store.close()


def _attempts(root: Path, flow: str) -> int:
    path = root / f"{flow}.attempts"
    return len(path.read_text()) if path.exists() else 0


def _state(root: Path, run_id: str) -> str | None:
    run = _run(root, run_id)
    return None if run is None else run.state


def test_a_crashed_child_is_retried_by_a_new_run(tmp_path: Path) -> None:
    _project(tmp_path, delay=0.5)
    first = _seed(tmp_path, "dies_once")
    retry = retry_run_id(first)
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, retry) == "COMPLETED", what="the retry to complete")
    finally:
        stop_daemon(daemon)
    crashed, again = _run(tmp_path, first), _run(tmp_path, retry)
    assert crashed is not None and again is not None
    assert crashed.state == "CRASHED" and "SIGKILL" in (crashed.state_message or "")
    assert again.retry_of == first and again.trigger == "retry" and again.attempts == 2
    assert again.created >= (crashed.ended or 0)
    assert len(_runs(tmp_path)) == 2 and _attempts(tmp_path, "dies_once") == 2
    assert f"retry flows.py:dies_once run {first[:12]}" in (tmp_path / "daemon.log").read_text()


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_retries_bound_the_whole_chain(tmp_path: Path) -> None:
    _project(tmp_path, delay=0)
    first = _seed(tmp_path, "always_dies")
    retry = retry_run_id(first)
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, retry) == "CRASHED", what="the retry to crash")
        log = tmp_path / "daemon.log"
        wait_for(lambda: "no retries left" in log.read_text(), what="no retries left")
        time.sleep(1.0)
    finally:
        stop_daemon(daemon)
    assert sorted(r.state for r in _runs(tmp_path)) == ["CRASHED", "CRASHED"]
    assert _attempts(tmp_path, "always_dies") == 2


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_a_retry_waiting_in_the_store_survives_a_daemon_kill(tmp_path: Path) -> None:
    _project(tmp_path, delay=4)
    first = _seed(tmp_path, "dies_once")
    retry = retry_run_id(first)
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, retry) == "SCHEDULED", what="the retry run")
    finally:
        daemon.kill()  # SIGKILL during the retry delay: no cleanup at all
        daemon.wait()
    assert _attempts(tmp_path, "dies_once") == 1
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, retry) == "COMPLETED", what="the retry to complete")
        time.sleep(1.0)
    finally:
        stop_daemon(daemon)
    assert _attempts(tmp_path, "dies_once") == 2
    assert sorted(r.state for r in _runs(tmp_path)) == ["COMPLETED", "CRASHED"]


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_a_daemon_stopped_during_a_retry_delay_moves_the_retry_to_the_store(
    tmp_path: Path,
) -> None:
    _project(tmp_path, delay=3)
    first = _seed(tmp_path, "fails_once")
    retry = retry_run_id(first)
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, first) == "RETRYING", what="the in-process retry delay")
    finally:
        stop_daemon(daemon)
    assert _state(tmp_path, first) == "CANCELLED"
    assert _state(tmp_path, retry) == "SCHEDULED"
    daemon = start_daemon(tmp_path)
    try:
        wait_for(lambda: _state(tmp_path, retry) == "COMPLETED", what="the retry to complete")
    finally:
        stop_daemon(daemon)
    again = _run(tmp_path, retry)
    assert again is not None and again.attempts == 2 and again.retry_of == first
    assert _attempts(tmp_path, "fails_once") == 2 and len(_runs(tmp_path)) == 2


def test_at_start_the_daemon_retries_runs_that_crashed_while_it_was_down(tmp_path: Path) -> None:
    from orchlite.daemon import Daemon
    from orchlite.states import StateName

    _project(tmp_path, delay=60)
    first = _seed(tmp_path, "dies_once")
    store = Store(tmp_path / ".orch")
    store.create_flow_run(
        run_id=first, flow_name="dies-once", name="dies_once", parameters="{}", now=1000.0
    )
    store.set_flow_run_state(first, StateName.RUNNING, attempts=1, now=1000.0)
    store.set_retry_policy(first, '{"retries": 1, "delays": [60.0]}')
    store.end_abandoned_run(first, StateName.CRASHED, "its process (pid 1) is gone")
    ended = store.get_flow_run(first).ended or 0.0
    launch = FakeLaunch()
    daemon = Daemon(store, tmp_path, launch=launch, log=lambda _: None)
    assert daemon.retries.schedule_missed(ended + 1) == [retry_run_id(first)]
    assert daemon.retries.schedule_missed(ended + 2) == []  # once only
    (waiting,) = store.waiting_slots()
    assert waiting.run_id == retry_run_id(first) and waiting.key == "retry:file:dies_once"
    assert abs(waiting.slot - (ended + 60)) < 1e-6
    assert store.prior_attempts(waiting.run_id) == 1

    # The tick starts it once due, through the launch every run takes, resuming the old run.
    assert daemon.tick(_at(ended + 30)).started == []
    assert daemon.tick(_at(ended + 61)).started == [waiting.run_id]
    assert launch.resumed == {waiting.run_id: first}
    store.close()


def _at(stamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc)


def test_one_retry_of_a_run_at_a_time(tmp_path: Path) -> None:
    """A run retried by hand is not retried again, by the daemon or by hand, until that ends."""
    store = Store(tmp_path / ".orch")
    old, manual = "aa" * 16, "bb" * 16
    store.create_flow_run(run_id=old, flow_name="f", name="f", parameters="{}")
    store.set_flow_run_state(old, StateName.CRASHED, "its process is gone")
    store.create_flow_run(
        run_id=manual, flow_name="f", name="f", parameters="{}", retry_of=old, trigger="retry"
    )
    retry = {"retry_of": old, "key": "retry:f", "due": 0.0, "prior_attempts": 1}
    assert not store.claim_retry_run(run_id="cc" * 16, **retry)
    with pytest.raises(UsageError, match=f"already being retried by run {manual[:8]} .PENDING"):
        store.create_flow_run(
            run_id="dd" * 16, flow_name="f", name="f", parameters="{}", retry_of=old
        )
    store.set_flow_run_state(manual, StateName.CANCELLED, "cancelled")
    assert store.claim_retry_run(run_id="cc" * 16, **retry)
    with pytest.raises(RunNotFoundError, match="no longer exists"):  # deleted by `orch gc`
        store.create_flow_run(
            run_id="ee" * 16, flow_name="f", name="f", parameters="{}", retry_of="ff" * 16
        )


def test_the_due_time_of_an_in_process_retry_is_recorded_with_its_retrying_state(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / ".orch")
    run = "cc" * 16
    store.create_flow_run(run_id=run, flow_name="f", name="f", parameters="{}", now=1000.0)
    assert retrying_until(store, run, 1234.0) == 1234.0  # never retried: due now
    store.set_flow_run_state(run, StateName.RUNNING, now=1000.0)
    # The message's wording is not read: the due time is a column of its own.
    store.set_flow_run_state(
        run, StateName.RETRYING, "attempt 1 failed", now=1001.0, retry_due=1003.5
    )
    assert retrying_until(store, run, 1234.0) == 1003.5
    store.set_flow_run_state(run, StateName.RUNNING, now=1003.5, attempts=2)
    assert retrying_until(store, run, 1234.0) == 1234.0  # retrying no more
    store.close()


def test_a_run_whose_parameters_were_recorded_redacted_is_not_retried_with_them(
    tmp_path: Path,
) -> None:
    """Its next attempt would get `***` for a secret: as `orch retry` does, the daemon does
    not send that, and says how to retry it by hand."""
    from orchlite.daemon import Daemon

    store = Store(tmp_path / ".orch")
    said: list[str] = []
    daemon = Daemon(store, tmp_path, launch=FakeLaunch(), log=said.append)
    for run_id, parameters in (("aa" * 16, '{"token": "***"}'), ("bb" * 16, '{"token": "t"}')):
        store.create_flow_run(
            run_id=run_id,
            flow_name="f",
            name="f",
            parameters=parameters,
            target="flows.py:f",
            trigger="schedule",
        )
        store.set_flow_run_state(run_id, StateName.RUNNING, attempts=1)
        store.set_retry_policy(run_id, '{"retries": 1, "delays": [0.0]}')
        store.end_abandoned_run(run_id, StateName.CRASHED, "its process (pid 1) is gone")
    assert daemon.retries.schedule("aa" * 16, time.time()) is None
    assert said == [
        f"not retrying flows.py:f run {'aa' * 6}: a parameter was recorded redacted (***); retry it"
        f" with `orch retry {'aa' * 6} -p NAME=VALUE`"
    ]
    assert daemon.retries.schedule("bb" * 16, time.time()) == retry_run_id("bb" * 16)
    store.close()
