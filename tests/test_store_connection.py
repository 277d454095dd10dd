"""The store's connection: transactions, savepoints, and a disk that fills up inside one.

SQLite rolls back the whole transaction on some errors, a full disk among them; a savepoint
opened inside it is then gone, and its rollback must not hide the error with "no such
savepoint". A full disk is made real with `PRAGMA max_page_count`, which makes SQLite fail
with SQLITE_FULL ("database or disk is full") once the database would grow past it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchlite.errors import DiskFullError, StoreError
from orchlite.states import StateName
from orchlite.store import Store, TaskRunSave
from tests.helpers.store_rows import flow_run, task_run

RUN = "aa" * 16
BIG = "x" * 200_000  # far more than the pages left below


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".orch") as store:
        flow_run(store, RUN, StateName.RUNNING)
        yield store


def _fill_up(store: Store) -> None:
    """Let the database grow by a few pages at most (this connection only)."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")


def _free_space(store: Store) -> None:
    store.conn.execute("PRAGMA max_page_count = 1073741823")


def _log(message: str) -> tuple[str, None, None, float, int, str, str]:
    return (RUN, None, None, 1.0, 20, "orchlite.flow_runs", message)


def test_a_full_disk_inside_a_savepoint_is_reported_as_a_full_disk(store: Store) -> None:
    _fill_up(store)
    with pytest.raises(DiskFullError), store.transaction():
        store.write_logs([_log("kept only if all of it is")])
        store.write_logs([_log(BIG)])  # a savepoint in the outer transaction
    assert not store.conn.in_transaction
    _free_space(store)
    assert store.logs(RUN) == []  # nothing of the transaction was written
    store.write_logs([_log("after")])
    assert [log.message for log in store.logs(RUN)] == ["after"]


def test_a_full_disk_in_a_batch_of_task_run_saves_fails_each_as_a_full_disk(
    store: Store,
) -> None:
    _fill_up(store)
    errors = store.save_task_runs(
        [
            TaskRunSave(task_run(RUN, 0), [("COMPLETED", None, 2.0)]),
            TaskRunSave(task_run(RUN, 1, result_data=BIG.encode()), [("COMPLETED", None, 3.0)]),
        ]
    )
    assert [type(error) for error in errors] == [DiskFullError, DiskFullError]
    _free_space(store)
    assert store.task_runs(RUN) == []
    assert store.save_task_runs([TaskRunSave(task_run(RUN, 0), [("COMPLETED", None, 4.0)])]) == [
        None
    ]
    assert [t.position for t in store.task_runs(RUN)] == [0]


def test_an_error_in_a_savepoint_rolls_back_the_savepoint_only(store: Store) -> None:
    with store.transaction():
        store.write_logs([_log("outer")])
        with pytest.raises(ValueError), store.transaction() as conn:
            conn.execute(
                "INSERT INTO logs (flow_run_id, ts, level, logger, message)"
                " VALUES (?, 1.0, 20, 'x', 'inner')",
                (RUN,),
            )
            raise ValueError("the inner work failed")
        store.write_logs([_log("outer again")])
    assert [log.message for log in store.logs(RUN)] == ["outer", "outer again"]


def test_an_error_in_a_transaction_rolls_it_back(store: Store) -> None:
    with pytest.raises(ValueError), store.transaction():
        store.write_logs([_log("lost")])
        raise ValueError("the work failed")
    assert store.logs(RUN) == [] and not store.conn.in_transaction


def test_a_read_only_view_reads_and_refuses_writes(store: Store) -> None:
    store.write_logs([_log("written")])
    with Store(store.home, read_only=True) as view:
        assert [log.message for log in view.logs(RUN)] == ["written"]
        with pytest.raises(StoreError, match="open read-only"):
            view.write_logs([_log("refused")])
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            view.conn.execute("DELETE FROM logs")
    assert len(store.logs(RUN)) == 1


def test_each_thread_has_its_own_connection_and_closes_it(store: Store) -> None:
    seen: list[sqlite3.Connection] = []

    def work() -> None:
        seen.append(store.conn)
        store.write_logs([_log("from a thread")])
        store.close_thread_connection()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen and seen[0] is not store.conn
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        seen[0].execute("SELECT 1")
    assert [log.message for log in store.logs(RUN)] == ["from a thread"]


def test_closing_a_store_leaves_another_threads_connection_to_that_thread(
    tmp_path: Path,
) -> None:
    """`close` while another thread (the recorder's) runs a statement never closes SQLite
    under it: that thread closes its old connection at its next use, or as it ends."""
    import threading

    store = Store(tmp_path / ".orch")
    stop = threading.Event()
    errors: list[BaseException] = []

    def checkpoint_until_stopped() -> None:
        try:
            while not stop.is_set():
                store.checkpoint()
                store.data_version()
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close_thread_connection()

    other = threading.Thread(target=checkpoint_until_stopped)
    other.start()
    try:
        for _ in range(300):
            store.data_version()
            store.close()
    finally:
        stop.set()
        other.join()
    assert errors == []
    store.close()
    assert store._connections == {}
