"""State history: every state change of a flow run or task run, as a row, in order.

Every run id (a flow run, or a standalone task run) gets a number that is never reused (the
`run_numbers` table, migration 6). A task run's `num` is (run number << 32) | call position,
and a history row's `num` is (run number << 32) | its index in the run, so recording a task
appends to one page of each table.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..redaction import redact
from .connection import Database
from .records import HistoryEntry, StateRow
from .sql import IN_RUN

RUN_NUMBERS_KEPT = 10_000
"""How many committed run numbers a process remembers before it starts over."""

_LAST_HISTORY_ROW = (
    "SELECT num FROM state_history WHERE num >= ? AND num < ? ORDER BY num DESC LIMIT 1"
)


class History(Database):
    """Run numbers and the state history appended under them."""

    def history(self, run_id: str, position: int | None = None) -> list[HistoryEntry]:
        """State changes of a flow run and its task runs (or of one task run), oldest first."""
        sql = f"SELECT position, state, message, ts FROM state_history WHERE {IN_RUN}"
        values: list[Any] = [run_id, run_id]
        if position is not None:
            sql += " AND position = ?"
            values.append(position)
        rows = self.conn.execute(sql + " ORDER BY num", values).fetchall()
        return [HistoryEntry(run_id, *row) for row in rows]

    def history_since(self, run_id: str, after: int = 0) -> tuple[list[HistoryEntry], int]:
        """The state changes of a flow run and its task runs recorded after mark `after`
        (0: all of them), oldest first, and the mark to pass next time.

        A mark is a history row's number: rows are numbered in the order they commit, so
        a reader that asks again with the mark it got sees each change once, however many
        task runs the run has.
        """
        rows = self.conn.execute(
            "SELECT num, position, state, message, ts FROM state_history"
            f" WHERE {IN_RUN} AND num > ? ORDER BY num",
            (run_id, run_id, after),
        ).fetchall()
        entries = [HistoryEntry(run_id, *row[1:]) for row in rows]
        return entries, (rows[-1][0] if rows else after)

    def _run_number(self, conn: sqlite3.Connection, run_id: str) -> int:
        """The number of `run_id` (see migration 6), given to it on its first use."""
        number = self._numbers.get(run_id)
        if number is not None:
            return number
        row = conn.execute("SELECT num FROM run_numbers WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute("INSERT INTO run_numbers (run_id) VALUES (?)", (run_id,))
        return int(cursor.lastrowid or 0)

    def _remember(self, run_id: str, number: int, history_end: int | None) -> None:
        """Keep a committed run number and history end (a number given in a transaction
        that rolled back could be given again to another run: only committed ones count)."""
        if len(self._numbers) >= RUN_NUMBERS_KEPT:
            self._numbers.clear()
            self._history_ends.clear()
        self._numbers[run_id] = number
        if history_end is not None:
            self._history_ends[number] = history_end

    def _insert_history(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        position: int | None,
        state: str,
        message: str | None,
        ts: float,
    ) -> None:
        number = self._run_number(conn, run_id)
        self._append_history(conn, number, position, [(state, message, ts)])

    def _append_history(
        self,
        conn: sqlite3.Connection,
        number: int,
        position: int | None,
        states: Sequence[StateRow],
        last: int | None = None,
    ) -> int:
        """Append state changes of run `number` after its newest one; returns the last num.

        A run's history rows are numbered without gaps, each writer appending right after
        the newest one. So the end this process last committed for the run (or `last`, one
        written earlier in the same transaction) is tried first, with no lookup: if any
        other connection appended since, the first row collides with one of theirs, and the
        end is then read from the table.
        """
        remembered = self._history_ends.pop(number, None)
        if last is None:
            last = remembered
        if last is not None:
            try:
                return _insert_history_after(conn, last, position, states)
            except sqlite3.IntegrityError:
                pass
        first = number << 32
        row = conn.execute(_LAST_HISTORY_ROW, (first, first + (1 << 32))).fetchone()
        return _insert_history_after(conn, row[0] if row else first, position, states)


@functools.lru_cache(maxsize=64)
def _history_insert(no_position: bool, messages: tuple[bool, ...]) -> str:
    """One INSERT statement for history rows with or without (NULL) a message each."""
    position = "NULL" if no_position else "?"
    rows = ",".join(f"(?,{position},?,{'?' if m else 'NULL'},?)" for m in messages)
    return f"INSERT INTO state_history (num, position, state, message, ts) VALUES {rows}"


def _insert_history_after(
    conn: sqlite3.Connection,
    last: int,
    position: int | None,
    states: Sequence[StateRow],
) -> int:
    """Insert `states` as the history rows numbered from `last + 1`; returns the last num.

    A missing position or message is written as a NULL literal, not bound (see
    `task_runs._task_run_row`).
    """
    values: list[Any] = []
    messages: list[bool] = []
    num = last
    for state, message, ts in states:
        num += 1
        if position is None:
            values += (num, state)
        else:
            values += (num, position, state)
        if message is None:
            values.append(ts)
            messages.append(False)
        else:
            values += (redact(message), ts)
            messages.append(True)
    conn.execute(_history_insert(position is None, tuple(messages)), values)
    return num
