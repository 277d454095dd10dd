"""The schema's migrations: a store made by the first version of orchlite opens with every row
it holds, at the current version, with the schema a new store gets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchlite.errors import SchemaTooNewError, StoreError
from orchlite.states import StateName
from orchlite.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Store
from tests.helpers.store_rows import flow_run, task_run

PARENT = "aa" * 16
CHILD = "bb" * 16
STANDALONE = "cc" * 16


def _version_1_store(home: Path) -> None:
    """A `.orch/` as the first schema left it, holding a run of each kind, through plain SQL."""
    home.mkdir(mode=0o700, parents=True)
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(MIGRATIONS[0].sql)
    conn.execute("PRAGMA user_version = 1")
    conn.executemany(
        "INSERT INTO flow_runs (id, flow_name, name, target, parameters, state, state_message,"
        " trigger, parent_run_id, parent_position, created, started, ended, attempts, pid, host,"
        " result_ref, result_serializer, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (PARENT, "etl", "etl-1", "etl.py:etl", '{"day": "mon"}', "COMPLETED", None,
             "schedule", None, None, 10.0, 11.0, 20.0, 1, 4321, "box", "ab" * 32, "pickle",
             '["nightly"]'),
            (CHILD, "load", "load-1", None, "{}", "FAILED", "ValueError: bad", "manual",
             PARENT, 1, 12.0, 12.0, 13.0, 1, 4321, "box", None, None, "[]"),
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO task_runs (flow_run_id, position, id, standalone, task_key, name,"
        " dynamic_key, state, state_message, attempts, inputs_hash, result_data,"
        " result_serializer, error_type, error_message, traceback, created, started, ended)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (PARENT, 0, "0" * 32, 0, "t@etl.py", "t-0", "0", "COMPLETED", None, 1, "h0", b"0",
             "json", None, None, None, 11.0, 11.0, 12.0),
            (PARENT, 2, "2" * 32, 0, "t@etl.py", "t-1", "1", "FAILED", "KeyError: 'x'", 2, "h1",
             None, None, "KeyError", "'x'", "Traceback ...", 13.0, 13.0, 14.0),
            (STANDALONE, 0, "3" * 32, 1, "t@etl.py", "t-0", "0", "COMPLETED", None, 1, "h0",
             b"9", "json", None, None, None, 15.0, 15.0, 16.0),
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO state_history (run_id, seq, position, state, message, ts)"
        " VALUES (?,?,?,?,?,?)",
        [
            (PARENT, 1, None, "RUNNING", None, 11.0),
            (PARENT, 2, 0, "COMPLETED", None, 12.0),
            (PARENT, 3, 2, "FAILED", "KeyError: 'x'", 14.0),
            (PARENT, 4, None, "COMPLETED", None, 20.0),
            (STANDALONE, 1, 0, "COMPLETED", None, 16.0),
        ],
    )
    conn.executemany(
        "INSERT INTO logs (flow_run_id, task_run_id, task_name, ts, level, logger, message)"
        " VALUES (?,?,?,?,?,?,?)",
        [
            (PARENT, None, None, 11.0, 20, "orchlite.flow_runs", "started"),
            (PARENT, "0" * 32, "t-0", 11.5, 20, "orchlite.task_runs", "row 1 of 2"),
        ],
    )
    conn.execute(
        "INSERT INTO cache_entries (key, task_key, task_run_id, result_data, result_serializer,"
        " created, expires) VALUES ('v1:k', 't@etl.py', ?, X'30', 'json', 12.0, NULL)",
        ("0" * 32,),
    )
    conn.close()


def _schema(path: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    conn.close()
    return rows


def test_the_migrations_keep_their_names_and_order() -> None:
    # A store's version counts positions in this list: append, never reorder or remove.
    assert [m.name for m in MIGRATIONS[:13]] == [
        "first schema",
        "task run upstream",
        "concurrency limits",
        "schedule marks and slots",
        "flow retry policy",
        "run numbers",
        "result previews",
        "process starts",
        "transaction records",
        "variables",
        "artifacts",
        "pauses",
        "slot names",
    ]
    assert len({m.name for m in MIGRATIONS}) == SCHEMA_VERSION == len(MIGRATIONS)


def test_a_version_1_store_opens_at_the_current_version_with_its_rows(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    _version_1_store(home)
    with Store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.integrity_check() == "ok"

        parent = store.get_flow_run(PARENT)
        assert (parent.flow_name, parent.target, parent.parameters, parent.state) == (
            "etl",
            "etl.py:etl",
            '{"day": "mon"}',
            "COMPLETED",
        )
        assert (parent.pid, parent.host, parent.pid_start, parent.ended) == (
            4321,
            "box",
            None,
            20.0,
        )
        assert store.prior_attempts(PARENT) == 0 and store.retry_policy(PARENT) is None
        result = store.flow_run_result(PARENT)
        assert result is not None and (result.blob, result.preview) == ("ab" * 32, None)
        assert [r.id for r in store.child_flow_runs(PARENT)] == [CHILD]
        assert store.get_flow_run(CHILD).state_message == "ValueError: bad"

        tasks = store.task_runs(PARENT, with_results=True)
        assert [(t.position, t.state, t.result_data, t.upstream) for t in tasks] == [
            (0, "COMPLETED", b"0", "[]"),
            (2, "FAILED", None, "[]"),
        ]
        assert (tasks[1].error_type, tasks[1].traceback) == ("KeyError", "Traceback ...")
        assert [t.standalone for t in store.task_runs(STANDALONE)] == [1]
        assert [(h.position, h.state, h.message) for h in store.history(PARENT)] == [
            (None, "RUNNING", None),
            (0, "COMPLETED", None),
            (2, "FAILED", "KeyError: 'x'"),
            (None, "COMPLETED", None),
        ]
        assert [log.message for log in store.logs(PARENT)] == ["started", "row 1 of 2"]
        stored = store.cached_result("v1:k")
        assert stored is not None and stored.data == b"0"
        assert [e.task_run_id for e in store.list_cache_entries()] == ["0" * 32]

        # And it takes new writes after its old rows.
        store.save_task_run(task_run(STANDALONE, 0, standalone=1), [("COMPLETED", None, 30.0)])
        assert [h.ts for h in store.history(STANDALONE)] == [16.0, 30.0]
        flow_run(store, "dd" * 16)
        assert store.resolve_run_id("last") == "dd" * 16


def test_an_upgraded_store_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    _version_1_store(tmp_path / "old")
    Store(tmp_path / "old").close()
    Store(tmp_path / "new").close()
    assert _schema(tmp_path / "old" / DB_NAME) == _schema(tmp_path / "new" / DB_NAME)


def test_a_store_of_a_newer_version_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    with Store(home) as store:
        flow_run(store, PARENT, StateName.COMPLETED)
        store.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError, match=f"schema {SCHEMA_VERSION + 1}"):
        Store(home)
    with sqlite3.connect(home / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT id FROM flow_runs").fetchall() == [(PARENT,)]
    conn.close()


def test_a_read_only_view_of_an_old_store_does_not_upgrade_it(tmp_path: Path) -> None:
    home = tmp_path / ".orch"
    _version_1_store(home)
    with pytest.raises(StoreError, match="needs a schema upgrade"):
        Store(home, read_only=True)
    with sqlite3.connect(home / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
