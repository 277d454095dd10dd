"""Log lines of flow and task runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..redaction import active as redaction_active
from ..redaction import redact
from .connection import Database
from .records import LogRecord, LogRow
from .sql import like_pattern


class Logs(Database):
    """Log lines, written in batches and read per flow run."""

    def write_logs(self, rows: Sequence[LogRow]) -> None:
        if rows:
            with self.transaction() as conn:
                insert_logs(conn, rows)

    def logs(
        self,
        flow_run_id: str,
        *,
        after_id: int = 0,
        min_level: int = 0,
        task_name: str | Sequence[str] | None = None,
        limit: int = 10_000,
        task_run_id: str | None = None,
        flow_only: bool = False,
        text: str = "",
        newest: int | None = None,
    ) -> list[LogRecord]:
        """A flow run's log records (and its subflows' are separate runs), oldest first.

        `task_name` keeps the records of the task runs of that name (or of any of those
        names), `task_run_id` one task run's, `flow_only` those of the flow run itself,
        `text` those whose message contains it (ignoring ASCII case); `newest` keeps only
        the last that many of the records that match.
        """
        sql = (
            "SELECT id, flow_run_id, task_run_id, task_name, ts, level, logger, message FROM logs"
            " WHERE flow_run_id = ? AND id > ? AND level >= ?"
        )
        values: list[Any] = [flow_run_id, after_id, min_level]
        if task_name is not None:
            names = [task_name] if isinstance(task_name, str) else list(task_name)
            sql += f" AND task_name IN ({', '.join('?' * len(names))})"
            values += names
        if task_run_id is not None:
            sql += " AND task_run_id = ?"
            values.append(task_run_id)
        if flow_only:
            sql += " AND task_run_id IS NULL"
        if text:
            sql += " AND message LIKE ? ESCAPE '\\'"
            values.append(like_pattern(text))
        if newest is not None:
            sql += " ORDER BY id DESC LIMIT ?"
            values.append(min(limit, newest))
            rows = self.conn.execute(sql, values).fetchall()
            return [LogRecord(*row) for row in reversed(rows)]
        sql += " ORDER BY id LIMIT ?"
        values.append(limit)
        return [LogRecord(*row) for row in self.conn.execute(sql, values)]


def insert_logs(conn: sqlite3.Connection, rows: Sequence[LogRow]) -> None:
    """Write log rows in the caller's transaction, each message redacted."""
    rows = [(*row[:-1], redact(row[-1])) for row in rows] if redaction_active() else rows
    conn.executemany(
        "INSERT INTO logs (flow_run_id, task_run_id, task_name, ts, level, logger, message)"
        " VALUES (?,?,?,?,?,?,?)",
        rows,
    )
