"""Concurrency and rate limits: `orch limit`, tagged tasks, `concurrency()`, `rate_limit()`.

The cross-process tests start real `orch run` and Python children against one `.orch/`, and
kill holders with SIGKILL: no part of the store or the clock is faked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from orchlite import concurrency, flow, rate_limit, task
from orchlite.context import open_store
from orchlite.limits import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
    acquire,
    holder_gone,
    limit_rows,
)
from orchlite.logging import setup_logging
from orchlite.store import Store
from tests.helpers import ORCH, wait_for, write
from tests.helpers import orch as run_orch

DEADLINE = 30.0
orch = partial(run_orch, expect=0, timeout=DEADLINE * 2)


@pytest.fixture(autouse=True)
def _quiet_logging() -> None:
    setup_logging(console=False)


@pytest.fixture
def project(tmp_path: Path, orch_home: Path) -> Path:
    """The project folder (the `.orch/` of the test lives in it)."""
    assert orch_home.parent == tmp_path
    return tmp_path


def start(root: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def python(root: Path, source: str, **kwargs: Any) -> subprocess.Popen[str]:
    return start(root, sys.executable, "-c", textwrap.dedent(source), **kwargs)


def store() -> Store:
    return open_store()[0]


HOLDER = """
    import sys
    from orchlite import concurrency

    with concurrency("db"):
        print("held", flush=True)
        sys.stdin.readline()
"""
"""Holds a 'db' slot until a line arrives on stdin (or forever, until killed)."""


def hold_slot(root: Path) -> subprocess.Popen[str]:
    holder = python(root, HOLDER, stdin=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()  # type: ignore[union-attr]
    return holder


# -- orch limit ---------------------------------------------------------------------------


def test_limit_set_ls_rm(project: Path) -> None:
    orch(project, "limit", "set", "db", "2")
    orch(project, "limit", "set", "api", "5", "--per-second")
    orch(project, "limit", "set", "db", "3")  # changing a limit replaces it
    rows = json.loads(orch(project, "limit", "ls", "--json").stdout)
    assert [(r["name"], r["limit"], r["per_second"], r["in_use"]) for r in rows] == [
        ("api", 5, True, 0),
        ("db", 3, False, 0),
    ]
    table = orch(project, "limit", "ls").stdout.splitlines()
    assert table[0].split() == ["TAG", "LIMIT", "IN", "USE", "HOLDERS"]
    assert table[1].split() == ["api", "5/s", "0", "-"]
    assert table[2].split() == ["db", "3", "0", "-"]
    removed = orch(project, "limit", "rm", "api")
    assert removed.stdout == "" and "api" in removed.stderr
    assert [r["name"] for r in json.loads(orch(project, "limit", "ls", "--json").stdout)] == ["db"]


def test_limit_ls_shows_holders(project: Path) -> None:
    orch(project, "limit", "set", "db", "2")
    holder = hold_slot(project)
    try:
        (row,) = json.loads(orch(project, "limit", "ls", "--json").stdout)
        assert row["in_use"] == 1
        (who,) = row["holders"]
        assert who["pid"] == holder.pid and who["alive"] is True
        assert f"pid {holder.pid}" in orch(project, "limit", "ls").stdout
    finally:
        holder.communicate("\n", timeout=DEADLINE)
    assert json.loads(orch(project, "limit", "ls", "--json").stdout)[0]["in_use"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ("set", "db", "0"),
        ("set", "db", "-1"),
        ("set", "db", "99999999999999999999"),
        ("set", "db", "1000001"),
        ("set", "db", "abc"),
        ("set", "db", "2.5"),
        ("set", "db"),
        ("set", " ", "2"),
        ("rm", "nope"),
    ],
)
def test_limit_bad_input_is_one_line_exit_2_and_writes_nothing(
    project: Path, orch_home: Path, args: tuple[str, ...]
) -> None:
    proc = orch(project, "limit", *args, expect=2)
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: ")
    assert not orch_home.exists()
    orch(project, "limit", "set", "db", "4")
    proc = orch(project, "limit", *args, expect=2)
    assert len(proc.stderr.splitlines()) == 1
    assert [(r["name"], r["limit"]) for r in limit_rows(store())] == [("db", 4)]


def test_limit_ls_without_a_store(project: Path, orch_home: Path) -> None:
    assert json.loads(orch(project, "limit", "ls", "--json").stdout) == []
    assert "no limits" in orch(project, "limit", "ls").stderr
    assert not orch_home.exists()


# -- tagged tasks across processes --------------------------------------------------------

SPANS_FLOW = """
    import time
    from orchlite import flow, task

    @task(tags=["db", "unlimited-tag"])
    def work(i: int) -> int:
        start = time.time()
        time.sleep(0.3)
        end = time.time()
        with open("spans.txt", "a") as fh:
            fh.write(f"{start} {end}\\n")
        return i

    @flow
    def many() -> list[int]:
        return [f.result() for f in [work.submit(i) for i in range(3)]]
"""


def test_a_tag_limit_holds_across_orch_runs(project: Path) -> None:
    write(project, "flows.py", SPANS_FLOW)
    orch(project, "limit", "set", "db", "2")
    runs = [start(project, *ORCH, "run", "flows.py:many") for _ in range(3)]
    for proc in runs:
        _, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
    spans = [tuple(map(float, line.split())) for line in (project / "spans.txt").open()]
    assert len(spans) == 9
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap == 2, spans
    assert limit_rows(store())[0]["in_use"] == 0


ONE_TASK_FLOW = """
    from orchlite import flow, task

    @task(tags=["db"])
    def load() -> str:
        return "loaded"

    @flow
    def one() -> str:
        return load()
"""


def _waiting_task(s: Store) -> Any:
    runs = s.list_flow_runs(limit=1)
    tasks = s.task_runs(runs[0].id) if runs else []
    return tasks and tasks[0].state == "PENDING" and tasks[0]


def test_a_waiting_task_is_shown_pending_with_why(project: Path) -> None:
    write(project, "flows.py", ONE_TASK_FLOW)
    orch(project, "limit", "set", "db", "1")
    holder = hold_slot(project)
    try:
        run = start(project, *ORCH, "run", "flows.py:one")
        wait_for(lambda: _waiting_task(store()), timeout=DEADLINE, what="the task to wait")
        (waiting,) = json.loads(orch(project, "show", "last", "--json").stdout)["tasks"]
        assert waiting["state"] == "PENDING"
        assert waiting["message"] == "waiting for a 'db' slot (1/1 in use)"
        assert run.poll() is None
    finally:
        holder.communicate("\n", timeout=DEADLINE)
    _, err = run.communicate(timeout=DEADLINE)
    assert run.returncode == 0, err
    detail = json.loads(orch(project, "show", "last", "--json").stdout)
    (done,) = detail["tasks"]
    assert (done["state"], done["message"]) == ("COMPLETED", None)
    assert (done["history"][0]["state"], done["history"][0]["message"]) == (
        "PENDING",
        "waiting for a 'db' slot (1/1 in use)",
    )
    assert [h["state"] for h in done["history"]][-2:] == ["RUNNING", "COMPLETED"]


def test_cancelling_a_run_stops_its_waiting_task(project: Path) -> None:
    write(project, "flows.py", ONE_TASK_FLOW)
    orch(project, "limit", "set", "db", "1")
    holder = hold_slot(project)
    try:
        run = start(project, *ORCH, "run", "flows.py:one")
        wait_for(lambda: _waiting_task(store()), timeout=DEADLINE, what="the task to wait")
        orch(project, "cancel", "last")
        run.communicate(timeout=DEADLINE)
        detail = json.loads(orch(project, "show", "last", "--json").stdout)
        assert detail["state"] == "CANCELLED"
        assert detail["tasks"][0]["state"] == "CANCELLED"
        assert limit_rows(store())[0]["in_use"] == 1  # the holder still has its slot
    finally:
        holder.communicate("\n", timeout=DEADLINE)


# -- leases -------------------------------------------------------------------------------


def test_the_slot_of_a_killed_process_is_reclaimed(project: Path) -> None:
    orch(project, "limit", "set", "db", "1")
    holder = hold_slot(project)
    holder.send_signal(signal.SIGKILL)  # not reaped yet: a zombie still has its pid
    taker = python(
        project,
        """
        import time
        from orchlite import concurrency

        began = time.monotonic()
        with concurrency("db", timeout_seconds=10):
            print(time.monotonic() - began)
        """,
    )
    out, err = taker.communicate(timeout=DEADLINE)
    holder.wait()
    assert taker.returncode == 0, err
    assert float(out) < 3.0
    assert limit_rows(store())[0]["in_use"] == 0


def hold_db_slot(project: Path, lease_seconds: float) -> subprocess.Popen[str]:
    """A process that takes a "db" slot on short leases (renewed every 0.1 s), prints
    "held", and keeps it until a line arrives on its stdin."""
    return python(
        project,
        f"""
        import sys
        from orchlite import concurrency, limits

        limits.LEASE_SECONDS, limits.RENEW_EVERY = {lease_seconds}, 0.1
        with concurrency("db"):
            print("held", flush=True)
            sys.stdin.readline()
        """,
        stdin=subprocess.PIPE,
    )


def test_a_stopped_holder_keeps_its_slot_on_its_own_host(project: Path) -> None:
    """Ctrl-Z (SIGSTOP) for three lease lengths: the holder lives, so its slot stays held."""
    orch(project, "limit", "set", "db", "1")
    holder = hold_db_slot(project, lease_seconds=0.5)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)
        expires = store().concurrency_slots()[0].expires
        wait_for(
            lambda: time.time() > expires + 1.0,
            timeout=DEADLINE,
            what="the stopped holder's lease to expire",
        )
        with pytest.raises(AcquireConcurrencySlotTimeoutError, match="1/1 in use"):
            acquire(store(), ["db"], timeout_seconds=0.5)
        assert limit_rows(store())[0]["in_use"] == 1
    finally:
        holder.send_signal(signal.SIGCONT)
        _, err = holder.communicate("\n", timeout=DEADLINE)
    assert holder.returncode == 0, err
    assert "are gone" not in err  # its renewals found its slot where it left it
    acquire(store(), ["db"], timeout_seconds=0.1).release()


def test_a_slot_whose_pid_was_reused_is_reclaimed() -> None:
    s = store()
    s.set_concurrency_limit("db", 1)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        taken, _ = s.try_acquire_slots(
            "reused-lease",
            ["db"],
            1,
            pid=other.pid,
            host=socket.gethostname(),
            task_run_id=None,
            holder="a process that exited long ago",
            lease_seconds=60,
            gone=holder_gone,
        )
        assert taken
        with pytest.raises(AcquireConcurrencySlotTimeoutError):
            acquire(s, ["db"], timeout_seconds=0.2)  # its recorded process is alive
        with s.transaction() as conn:  # as if recorded by an earlier process with that pid
            conn.execute("UPDATE concurrency_slots SET pid_start = 'another-boot:1'")
        acquire(s, ["db"], timeout_seconds=0.5).release()
    finally:
        other.kill()
        other.wait()


def test_an_expired_lease_from_another_host_is_reclaimed() -> None:
    s = store()
    s.set_concurrency_limit("db", 1)
    taken, _ = s.try_acquire_slots(
        "elsewhere-lease",
        ["db"],
        1,
        pid=os.getpid(),
        host="another-host",
        task_run_id=None,
        holder="far away",
        lease_seconds=0.5,
        gone=holder_gone,
    )
    assert taken
    began = time.monotonic()
    with pytest.raises(AcquireConcurrencySlotTimeoutError, match="1/1 in use"):
        acquire(s, ["db"], timeout_seconds=0.2)
    acquire(s, ["db"], timeout_seconds=5).release()
    assert 0.3 < time.monotonic() - began < 3.0


def test_a_held_lease_is_renewed_past_its_expiry(project: Path) -> None:
    orch(project, "limit", "set", "db", "1")
    holder = hold_db_slot(project, lease_seconds=1.0)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(2.2)  # two leases long: only renewals keep the slot taken
        with pytest.raises(AcquireConcurrencySlotTimeoutError):
            acquire(store(), ["db"], timeout_seconds=0.3)
    finally:
        holder.communicate("\n", timeout=DEADLINE)
    acquire(store(), ["db"], timeout_seconds=0.1).release()


# -- in-process tasks ---------------------------------------------------------------------


def test_a_task_takes_a_slot_of_each_limited_tag_and_gives_them_back() -> None:
    s = store()
    s.set_concurrency_limit("a", 1)
    s.set_concurrency_limit("b", 2)
    seen: dict[str, int] = {}

    @task(tags=["b", "a", "not-limited"])
    def both() -> None:
        for row in limit_rows(s):
            seen[row["name"]] = row["in_use"]
            assert row["holders"][0]["holder"] == "both-0"

    @flow
    def pipeline() -> None:
        both()

    pipeline()
    assert seen == {"a": 1, "b": 1}
    assert [r["in_use"] for r in limit_rows(s)] == [0, 0]


def test_slots_are_given_back_after_failure_retry_and_timeout() -> None:
    s = store()
    s.set_concurrency_limit("db", 1)
    calls: list[int] = []

    @task(tags=["db"], retries=1, retry_delay_seconds=0)
    def flaky() -> None:
        calls.append(limit_rows(s)[0]["in_use"])
        raise ValueError("no")

    @task(tags=["db"], timeout_seconds=0.2)
    def slow() -> None:
        time.sleep(1)

    @flow
    def pipeline() -> None:
        flaky.submit().wait()
        slow.submit().wait()

    pipeline(return_state=True)
    assert calls == [1, 1]
    assert limit_rows(s)[0]["in_use"] == 0
    with concurrency("db", timeout_seconds=1):
        pass


# -- concurrency() and rate_limit() ------------------------------------------------------


def test_concurrency_blocks_within_a_process_and_times_out() -> None:
    store().set_concurrency_limit("db", 1)
    with (
        concurrency("db"),
        pytest.raises(AcquireConcurrencySlotTimeoutError, match="'db' slot"),
        concurrency(["db"], timeout_seconds=0.2),
    ):
        pass
    with concurrency("db", timeout_seconds=0.2):
        pass


def test_concurrency_refusals() -> None:
    s = store()
    s.set_concurrency_limit("db", 2)
    s.set_concurrency_limit("api", 5, per_second=True)
    with concurrency("unknown"):  # no limit set: nothing to wait for
        pass
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match="no concurrency limit"),
        concurrency("unknown", strict=True),
    ):
        pass
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match="only 2"),
        concurrency("db", occupy=3),
    ):
        pass
    with pytest.raises(ConcurrencySlotAcquisitionError, match="not a rate limit"):
        rate_limit("db")
    rate_limit("unknown")


RATE_USER = """
    import time
    from orchlite import rate_limit

    for _ in range(6):
        rate_limit("api")
        with open("stamps.txt", "a") as fh:
            fh.write(f"{time.time()}\\n")
"""


def test_rate_limit_spaces_acquisitions_across_processes(project: Path) -> None:
    orch(project, "limit", "set", "api", "5", "--per-second")
    users = [python(project, RATE_USER) for _ in range(2)]
    for proc in users:
        _, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
    stamps = sorted(float(line) for line in (project / "stamps.txt").open())
    assert len(stamps) == 12
    assert all(later - earlier > 0.9 for earlier, later in zip(stamps, stamps[5:], strict=False))
    assert stamps[-1] - stamps[0] > 1.8
