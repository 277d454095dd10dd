"""Pieces of SQL, and values as they are stored, that several of the store's concerns share."""

from __future__ import annotations

import socket
import sqlite3

from ..processes import process_start
from ..states import TERMINAL, StateName

FLOW_RUN_COLUMNS = (
    "id, flow_name, name, target, parameters, state, state_message, trigger, parent_run_id,"
    " parent_position, retry_of, created, started, ended, attempts, pid, host, heartbeat,"
    " deadline, result_ref, result_serializer, pid_start, tags"
)
"""The columns of a `FlowRun`, in its fields' order."""

IN_RUN = (
    "num >= (SELECT num << 32 FROM run_numbers WHERE run_id = ?)"
    " AND num < (SELECT (num + 1) << 32 FROM run_numbers WHERE run_id = ?)"
)
"""Rows of task_runs or state_history that belong to one run (its id given twice)."""

TERMINAL_STATES = tuple(s.value for s in TERMINAL)
UNFINISHED_STATES = tuple(s.value for s in StateName if s not in TERMINAL)

RETRIED_BY_LIVE_RUNS = (
    "SELECT retry_of FROM flow_runs WHERE state IN"
    f" ({','.join('?' * len(UNFINISHED_STATES))}) AND retry_of IS NOT NULL"
)
"""The runs that an unfinished run retries (the unfinished states given as parameters)."""


def live_retry(conn: sqlite3.Connection, retry_of: str, run_id: str) -> tuple[str, str] | None:
    """(id, state) of an unfinished run other than `run_id` that retries `retry_of`."""
    marks = ",".join("?" * len(UNFINISHED_STATES))
    row = conn.execute(
        f"SELECT id, state FROM flow_runs WHERE state IN ({marks}) AND retry_of = ? AND id != ?"
        " ORDER BY created LIMIT 1",
        (*UNFINISHED_STATES, retry_of, run_id),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def like_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching `text` anywhere, taken literally."""
    return "%" + "".join("\\" + c if c in "\\%_" else c for c in text) + "%"


def start_of(pid: int | None, host: str | None) -> str | None:
    """When process `pid` of `host` started, if it runs here; None otherwise.

    Stored beside each pid, so a pid since reused by another process is not taken for it.
    """
    if pid is None or host != socket.gethostname():
        return None
    return process_start(pid)
