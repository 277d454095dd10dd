"""State history: every state change of a flow run or task run, in order.

Every run id (a flow run, or a standalone task run) gets a number that is never reused (the
`run_numbers` table, migration 6). A task run's `num` is (run number << 32) | call position.

A flow run's state changes are rows of `state_history`, numbered (run number << 32) | their
index in the run. A task run's are lines of its own row's `history` column (migration 20),
appended by the same upsert that writes its new state: so recording a task run writes one
row of one table, one page, instead of a second b-tree's page for its history rows.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..redaction import redact
from .connection import Database
from .records import HistoryEntry, StateRow
from .sql import IN_RUN

RUN_NUMBERS_KEPT = 10_000
"""How many committed run numbers a process remembers before it starts over."""

POSITIONS_CHUNK = 500
"""Task runs read in one query by position (SQLite bounds a query's parameters)."""

_INSERT_FLOW_STATE = (
    "INSERT INTO state_history (num, state, message, ts) VALUES ("
    " coalesce((SELECT max(num) FROM state_history WHERE num >= ?1 AND num < ?1 + (1 << 32)),"
    " ?1) + 1, ?2, ?3, ?4)"
)
"""A flow run's next history row, numbered right after its newest one (?1: run number << 32)."""

_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


class History(Database):
    """Run numbers and the state history recorded under them."""

    def history(self, run_id: str, position: int | None = None) -> list[HistoryEntry]:
        """State changes of a flow run and its task runs (or of one task run), oldest first.

        A run's whole history is its own rows and its task runs' lines merged by time (to
        the microsecond, as task runs' are kept); each keeps its own order, and at the same
        time a flow run's change comes first.
        """
        if position is not None:
            return self.task_histories(run_id, [position]).get(position, [])
        flow = self.conn.execute(
            f"SELECT state, message, ts FROM state_history WHERE {IN_RUN} ORDER BY num",
            (run_id, run_id),
        ).fetchall()
        rows = self.conn.execute(
            f"SELECT position, history FROM task_runs WHERE {IN_RUN} AND history != ''"
            " ORDER BY num",
            (run_id, run_id),
        ).fetchall()
        lines = [[HistoryEntry(run_id, None, *row) for row in flow]]
        lines += [parse_history(run_id, position, text) for position, text in rows]
        return list(heapq.merge(*lines, key=_in_micros))

    def flow_history_since(self, run_id: str, after: int = 0) -> tuple[list[HistoryEntry], int]:
        """The state changes of flow run `run_id` itself recorded after mark `after` (0: all
        of them), oldest first, and the mark to pass next time."""
        rows = self.conn.execute(
            f"SELECT num, state, message, ts FROM state_history WHERE {IN_RUN} AND num > ?"
            " ORDER BY num",
            (run_id, run_id, after),
        ).fetchall()
        entries = [HistoryEntry(run_id, None, *row[1:]) for row in rows]
        return entries, (rows[-1][0] if rows else after)

    def task_histories(
        self, run_id: str, positions: Sequence[int]
    ) -> dict[int, list[HistoryEntry]]:
        """The state changes of the task runs of `run_id` at these positions, each oldest
        first (a position with no task run is left out)."""
        rows = self._task_rows_at(run_id, positions, "position, history")
        return {position: parse_history(run_id, position, text) for position, text in rows}

    def _task_rows_at(
        self, run_id: str, positions: Sequence[int], columns: str
    ) -> Iterator[tuple[Any, ...]]:
        """`columns` of the task runs of `run_id` at these positions, in call order, read by
        primary key a chunk at a time (SQLite bounds a query's parameters)."""
        number = self._recorded_number(run_id) if positions else None
        if number is None:
            return
        wanted = sorted({number << 32 | p for p in positions})
        for start in range(0, len(wanted), POSITIONS_CHUNK):
            nums = wanted[start : start + POSITIONS_CHUNK]
            yield from self.conn.execute(
                f"SELECT {columns} FROM task_runs"
                f" WHERE num IN ({','.join('?' * len(nums))}) ORDER BY num",
                nums,
            )

    def _recorded_number(self, run_id: str) -> int | None:
        """The number of `run_id`, if it has one (any row of it was ever recorded)."""
        row = self.conn.execute(
            "SELECT num FROM run_numbers WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else int(row[0])

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

    def _remember(self, run_id: str, number: int) -> None:
        """Keep a committed run number (a number given in a transaction that rolled back
        could be given again to another run: only committed ones count)."""
        if len(self._numbers) >= RUN_NUMBERS_KEPT:
            self._numbers.clear()
        self._numbers[run_id] = number

    def _insert_history(
        self, conn: sqlite3.Connection, run_id: str, state: str, message: str | None, ts: float
    ) -> None:
        """Append a state change of flow run `run_id` after its newest one."""
        first = self._run_number(conn, run_id) << 32
        text = None if message is None else redact(message)
        conn.execute(_INSERT_FLOW_STATE, (first, state, text, ts))


def history_lines(states: Iterable[StateRow]) -> str:
    """A task run's state changes as the lines its `history` column holds.

    One line per state: "STATE MICROSECONDS" or "STATE MICROSECONDS MESSAGE": the time in
    whole microseconds since the epoch (as precise as a clock's reading is kept anywhere
    else, and three times cheaper to write than a float's shortest repr), the message
    redacted, with its backslashes and newlines escaped. Migration 20 writes the same.
    """
    text = ""
    for state, message, ts in states:
        if message is None:
            text += f"{state} {round(ts * 1_000_000)}\n"
        else:
            escaped = redact(message).replace("\\", "\\\\").replace("\n", "\\n")
            text += f"{state} {round(ts * 1_000_000)} {escaped}\n"
    return text


def parse_history(run_id: str, position: int | None, text: str) -> list[HistoryEntry]:
    """The entries of a task run's `history` column, oldest first (see `history_lines`)."""
    entries = []
    for line in text.split("\n"):
        if not line:
            continue
        state, _, rest = line.partition(" ")
        micros, spaced, message = rest.partition(" ")
        entries.append(
            HistoryEntry(
                run_id,
                position,
                state,
                _unescape(message) if spaced else None,
                int(micros) / 1_000_000,
            )
        )
    return entries


def _in_micros(entry: HistoryEntry) -> int:
    return round(entry.ts * 1_000_000)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: "\n" if m[1] == "n" else m[1], text)
