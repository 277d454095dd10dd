"""A task run's state changes kept as lines of its own row: any message and time read back
as written, whether the engine wrote them or an upgrade moved them there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchlite import redaction
from orchlite.store import Store
from orchlite.store.history import history_lines, parse_history
from orchlite.store.migrations import MIGRATIONS
from orchlite.store.schema import statements
from tests.helpers.store_rows import flow_run, task_run

RUN = "a" * 32
STATES = st.sampled_from(["PENDING", "RUNNING", "COMPLETED", "FAILED", "AwaitingRetry"])
TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@given(st.lists(st.tuples(STATES, st.none() | st.text(), TIMES), max_size=5))
def test_any_state_change_reads_back_as_written_to_the_microsecond(states: list) -> None:
    entries = parse_history(RUN, 3, history_lines(states))
    assert [(e.state, e.message, e.ts) for e in entries] == [
        (state, message, round(ts * 1_000_000) / 1_000_000) for state, message, ts in states
    ]
    assert {(e.run_id, e.position) for e in entries} <= {(RUN, 3)}


def test_a_message_is_redacted_before_it_is_kept(orch_home: Path) -> None:
    redaction.register("HISTORY_TOKEN", "history-token-8812")
    with Store(orch_home) as store:
        flow_run(store, RUN)
        failed = [("FAILED", "401 for token history-token-8812", 1.0)]
        store.save_task_run(task_run(RUN, 0), failed)
        text = store.conn.execute("SELECT history FROM task_runs").fetchone()[0]
        assert [h.message for h in store.history(RUN, 0)] == ["401 for token ***"]
    assert "history-token-8812" not in text


def test_an_upgrade_moves_each_task_runs_history_into_its_row(orch_home: Path) -> None:
    """A store at version 19, whose task runs' changes are history rows, read after the
    upgrade: the same entries, in the same order, messages with newlines and backslashes."""
    message = "KeyError: 'x'\n  in C:\\data\\n.csv"
    path = orch_home / "orch.db"
    orch_home.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    for number, migration in enumerate(MIGRATIONS[:19], start=1):
        for statement in statements(migration.sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute(
        "INSERT INTO flow_runs (id, flow_name, name, parameters, state, created)"
        " VALUES (?, 'f', 'f', '{}', 'FAILED', 1.0)",
        (RUN,),
    )
    conn.execute("INSERT INTO run_numbers (num, run_id) VALUES (7, ?)", (RUN,))
    base = 7 << 32
    conn.executemany(
        "INSERT INTO task_runs (num, flow_run_id, position, id, task_key, name, dynamic_key,"
        " state, created) VALUES (?, ?, ?, ?, 't', 't', '0', ?, 1.0)",
        [(base | 0, RUN, 0, "0" * 32, "COMPLETED"), (base | 1, RUN, 1, "1" * 32, "FAILED")],
    )
    conn.executemany(
        "INSERT INTO state_history (num, position, state, message, ts) VALUES (?,?,?,?,?)",
        [
            (base | 1, None, "RUNNING", None, 1.0),
            (base | 2, 1, "PENDING", None, 1.25),
            (base | 3, 0, "RUNNING", None, 1.5),
            (base | 4, 1, "RUNNING", "attempt 1", 1.5),
            (base | 5, 0, "COMPLETED", "", 2.0),
            (base | 6, 1, "FAILED", message, 3.0),
            (base | 7, None, "FAILED", message, 3.0),
        ],
    )
    conn.close()
    with Store(orch_home) as store:
        history = [(h.position, h.state, h.message, h.ts) for h in store.history(RUN)]
        rows = store.conn.execute("SELECT COUNT(*) FROM state_history").fetchone()[0]
    assert history == [
        (None, "RUNNING", None, 1.0),
        (1, "PENDING", None, 1.25),
        (0, "RUNNING", None, 1.5),
        (1, "RUNNING", "attempt 1", 1.5),
        (0, "COMPLETED", "", 2.0),
        (None, "FAILED", message, 3.0),
        (1, "FAILED", message, 3.0),
    ]
    assert rows == 2  # the flow run's own
