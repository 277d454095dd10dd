"""Task runs and state history keyed by run number (migration 6).

A store written before migration 6 is upgraded in place with every task run and state
change kept in order; afterwards, writers on separate connections (as separate processes
would be) append history in commit order, and a run number given in a transaction that
rolled back never mixes two runs' rows.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from orchlite.states import StateName
from orchlite.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Store, TaskRun, TaskRunSave
from tests.helpers.store_rows import task_run

FLOW_A = "aa" * 16
FLOW_B = "bb" * 16
STANDALONE = "cc" * 16


def _task(run_id: str, position: int, state: str = "COMPLETED", **fields: object) -> TaskRun:
    return task_run(run_id, position, state, standalone=int(run_id == STANDALONE), **fields)


def _schema_5_store(home: Path) -> None:
    """A `.orch/` as orchlite wrote it at schema version 5, through plain SQL."""
    home.mkdir(parents=True)
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for migration in MIGRATIONS[:5]:
        for statement in filter(None, (part.strip() for part in migration.sql.split(";"))):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 5")
    for run_id, created in ((FLOW_A, 10.0), (FLOW_B, 5.0)):
        conn.execute(
            "INSERT INTO flow_runs (id, flow_name, name, state, created)"
            " VALUES (?, 'f', 'f', 'COMPLETED', ?)",
            (run_id, created),
        )
    rows = [_task(FLOW_A, 0), _task(FLOW_A, 1), _task(FLOW_A, 2, "RUNNING"), _task(FLOW_B, 0)]
    rows.append(_task(STANDALONE, 0))
    for run in rows:
        conn.execute(
            "INSERT INTO task_runs (flow_run_id, position, id, standalone, task_key, name,"
            " dynamic_key, state, attempts, inputs_hash, result_serializer, result_data,"
            " created, started, ended) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run.flow_run_id,
                run.position,
                run.id,
                run.standalone,
                run.task_key,
                run.name,
                run.dynamic_key,
                run.state,
                run.attempts,
                run.inputs_hash,
                run.result_serializer,
                run.result_data,
                run.created,
                run.started,
                run.ended,
            ),
        )
    # History rows inserted out of order: their seq, not the insertion order, is the order.
    history = [
        (FLOW_A, 30, 0, "COMPLETED"),
        (FLOW_A, 10, None, "PENDING"),
        (FLOW_A, 20, 0, "RUNNING"),
        (FLOW_A, 40, 2, "RUNNING"),
        (FLOW_B, 15, None, "COMPLETED"),
        (STANDALONE, 5, 0, "COMPLETED"),
    ]
    for run_id, seq, position, state in history:
        conn.execute(
            "INSERT INTO state_history (run_id, seq, position, state, ts) VALUES (?,?,?,?,?)",
            (run_id, seq, position, state, float(seq)),
        )
    conn.close()


def test_a_schema_5_store_is_upgraded_with_its_task_runs_and_history_in_order(
    tmp_path: Path,
) -> None:
    home = tmp_path / ".orch"
    _schema_5_store(home)
    with Store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
        tasks = store.task_runs(FLOW_A, with_results=True)
        assert [(t.position, t.state, t.result_data) for t in tasks] == [
            (0, "COMPLETED", b"0"),
            (1, "COMPLETED", b"1"),
            (2, "RUNNING", b"2"),
        ]
        assert tasks[1] == _task(FLOW_A, 1)
        assert [t.position for t in store.task_runs(FLOW_B)] == [0]
        assert [t.standalone for t in store.task_runs(STANDALONE)] == [1]
        assert [(h.position, h.state, h.ts) for h in store.history(FLOW_A)] == [
            (None, "PENDING", 10.0),
            (0, "RUNNING", 20.0),
            (0, "COMPLETED", 30.0),
            (2, "RUNNING", 40.0),
        ]
        assert [h.state for h in store.history(FLOW_A, 0)] == ["RUNNING", "COMPLETED"]
        assert store.task_state_counts([FLOW_A, FLOW_B, "dd" * 16]) == {
            FLOW_A: {"COMPLETED": 2, "RUNNING": 1},
            FLOW_B: {"COMPLETED": 1},
            "dd" * 16: {},
        }
        stored = store.task_run_result(FLOW_A, 1)
        assert stored is not None and stored.data == b"1"

        # The upgraded runs take new rows after their old ones.
        store.save_task_run(_task(FLOW_A, 3), [("PENDING", None, 50.0), ("COMPLETED", None, 51.0)])
        assert [h.ts for h in store.history(FLOW_A)] == [10.0, 20.0, 30.0, 40.0, 50.0, 51.0]
        assert store.end_abandoned_run(FLOW_A, StateName.CRASHED, "gone") is False  # ended
        assert [t.position for t in store.task_runs(FLOW_A)] == [0, 1, 2, 3]


def test_garbage_collection_removes_a_runs_task_runs_and_history_only(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    _schema_5_store(home)
    with Store(home) as store:
        assert store.delete_runs_before(7.0) == 1  # FLOW_B, created at 5
        assert store.task_runs(FLOW_B) == [] and store.history(FLOW_B) == []
        assert len(store.task_runs(FLOW_A)) == 3 and len(store.history(FLOW_A)) == 4
        assert store.delete_runs_before(1000.0) == 2  # FLOW_A and the standalone task run
        assert store.task_runs(FLOW_A) == [] and store.task_runs(STANDALONE) == []
        assert store.conn.execute("SELECT COUNT(*) FROM state_history").fetchone()[0] == 0


def test_a_runs_history_merges_its_own_changes_and_its_task_runs_by_time(
    tmp_path: Path,
) -> None:
    home = tmp_path / ".orch"
    with Store(home) as runner, Store(home) as other:
        runner.create_flow_run(run_id=FLOW_A, flow_name="f", name="f", parameters="{}")
        runner.set_flow_run_state(FLOW_A, StateName.RUNNING, now=time.time())
        now = time.time()
        runner.save_task_run(_task(FLOW_A, 0), [("PENDING", None, now), ("COMPLETED", None, now)])
        assert other.request_cancel(FLOW_A)
        runner.save_task_run(_task(FLOW_A, 1, "RUNNING"), [("RUNNING", None, time.time())])
        other.end_abandoned_run(FLOW_A, StateName.CRASHED, "gone", now=time.time())
        # Terminal states are final: the late write of the ended run records nothing.
        assert not runner.save_task_run(_task(FLOW_A, 2), [("COMPLETED", None, time.time())])
        runner.save_task_run(_task(STANDALONE, 0), [("COMPLETED", None, time.time())])
        history = runner.history(FLOW_A)
    assert [(h.position, h.state) for h in history] == [
        (None, "PENDING"),
        (None, "RUNNING"),
        (0, "PENDING"),
        (0, "COMPLETED"),
        (None, "CANCELLING"),
        (1, "RUNNING"),
        (None, "CRASHED"),  # at the same time as the task run it ended: the flow run first
        (1, "CRASHED"),
    ]
    assert history[-1].message == "gone"
    assert history[-1].ts == pytest.approx(history[-2].ts, abs=1e-6)
    with Store(home) as reader:
        assert [h.state for h in reader.history(STANDALONE)] == ["COMPLETED"]


def test_a_run_number_given_in_a_rolled_back_transaction_is_not_kept(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    with Store(home) as first, Store(home) as second:
        with pytest.raises(RuntimeError), first.transaction():
            first.save_task_run(_task(STANDALONE, 0), [("COMPLETED", None, 1.0)])
            raise RuntimeError("the enclosing work failed")
        assert first.task_runs(STANDALONE) == []
        # The number the rolled-back transaction gave is free again: another run takes it.
        second.create_flow_run(run_id=FLOW_B, flow_name="f", name="f", parameters="{}")
        second.save_task_run(_task(FLOW_B, 0), [("COMPLETED", None, 2.0)])
        first.save_task_run(_task(STANDALONE, 0), [("COMPLETED", None, 3.0)])
        assert [t.flow_run_id for t in first.task_runs(FLOW_B)] == [FLOW_B]
        assert [t.flow_run_id for t in first.task_runs(STANDALONE)] == [STANDALONE]
        assert [h.ts for h in first.history(FLOW_B) if h.position == 0] == [2.0]


def test_every_field_of_a_task_run_is_written_whatever_is_missing(tmp_path: Path) -> None:
    with Store(tmp_path / ".orch") as store:
        store.create_flow_run(run_id=FLOW_A, flow_name="f", name="f", parameters="{}")
        plain = _task(FLOW_A, 0, cache_key="v1:key", tags='["etl"]', upstream="[3]")
        failed = _task(
            FLOW_A,
            1,
            "FAILED",
            state_message="ValueError: bad",
            result_ref="ab" * 32,
            result_data=None,
            error_type="ValueError",
            error_message="bad",
            traceback="Traceback ...",
        )
        running = _task(FLOW_A, 2, "RUNNING", started=None, inputs_hash=None)
        for run in (plain, failed, running):
            store.save_task_run(run, [("PENDING", None, 1.0), (run.state, run.state_message, 2.0)])
        assert store.task_runs(FLOW_A, with_results=True) == [plain, failed, running]
        assert [h.message for h in store.history(FLOW_A, 1)] == [None, "ValueError: bad"]
        assert [h.message for h in store.history(FLOW_A, 2)] == [None, None]


def test_a_batch_of_task_run_saves_commits_all_but_the_one_that_fails(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    with Store(home) as store, Store(home) as other:
        store.create_flow_run(run_id=FLOW_A, flow_name="f", name="f", parameters="{}")
        unbindable = _task(FLOW_A, 1, "RUNNING", tags=object())  # SQLite cannot store it
        errors = store.save_task_runs(
            [
                TaskRunSave(_task(FLOW_A, 0, "RUNNING"), [("RUNNING", None, 2.0)]),
                TaskRunSave(unbindable, [("RUNNING", None, 2.5)]),
                TaskRunSave(_task(FLOW_A, 2, "RUNNING"), [("RUNNING", None, 3.0)]),
            ]
        )
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], sqlite3.Error)
        assert [t.position for t in other.task_runs(FLOW_A)] == [0, 2]
        # Later saves append after what the batch wrote.
        store.save_task_run(_task(FLOW_A, 0), [("COMPLETED", None, 4.0)])
        store.save_task_run(_task(FLOW_A, 1), [("COMPLETED", None, 5.0)])
        history = other.history(FLOW_A)
        states = [(h.position, h.state, h.ts) for h in history if h.position is not None]
    assert states == [
        (0, "RUNNING", 2.0),
        (2, "RUNNING", 3.0),
        (0, "COMPLETED", 4.0),
        (1, "COMPLETED", 5.0),
    ]
