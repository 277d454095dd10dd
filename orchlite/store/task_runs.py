"""Task runs: one row per (flow run, call position), saved whole with its new states."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DiskFullError
from ..faults import fault_point
from ..redaction import redact, redact_optional
from ..states import StateName, task_state_after
from .cache import put_cache_entry
from .files import is_full
from .history import History, history_lines
from .logs import insert_logs
from .records import LogRow, Progress, StateRow, StoredResult, TaskRun, TaskRunSave
from .sql import IN_RUN, TERMINAL_STATES

TASK_RUN_COLUMNS = (
    "flow_run_id, position, id, standalone, task_key, name, dynamic_key, state, state_message,"
    " attempts, inputs_hash, cache_key, result_ref, result_serializer, error_type,"
    " error_message, traceback, created, started, ended, tags, upstream"
)

# The crash points (`orchlite.faults`) after the commits of task run states.
_TASK_SAVED_FAULTS = {
    StateName.RUNNING.value: "task_started",
    StateName.COMPLETED.value: "task_result_recorded",
    StateName.CACHED.value: "task_result_recorded",
}


class TaskRuns(History):
    """Task runs, each saved whole with its new states in one commit."""

    def save_task_run(
        self,
        run: TaskRun,
        states: Sequence[StateRow] = (),
        *,
        cache: tuple[str, float | None] | None = None,
        logs: Sequence[LogRow] = (),
        answer: Callable[[], bool] | None = None,
    ) -> bool:
        """Write a task run's whole row and append its new state changes, in one commit.

        The row is upserted, so the same call records a new task run, a state change, or a
        new attempt at a (flow run, position) left by an earlier attempt of the flow run.
        `cache` = (key, expires) also stores the run's result as a cache entry in the same
        commit, so a cache entry never exists without its result.

        Terminal states are final: once its flow run has ended (e.g. reaped as CRASHED
        while its process was stopped, or TIMED_OUT while an abandoned body ran on),
        nothing of the task run is written (its log lines are) and False is returned.

        `answer` is asked first, inside the transaction: a cache hit's lookup, which reads
        the entry through this store and fills the run's result from it, so that finding
        the entry and recording the hit take one transaction (a read of its own costs more
        than the lookup inside the write). When it says no, nothing of the task run is
        written (its log lines are) and False is returned.
        """
        with self.transaction(_TASK_SAVED_FAULTS.get(run.state, "")) as conn:
            number = self._write_task_run(conn, run, states, cache, logs, answer)
        if number is None:
            return False
        if not conn.in_transaction:  # committed, not a part of a larger transaction
            self._remember(run.flow_run_id, number)
        return True

    def save_task_runs(self, saves: Sequence[TaskRunSave]) -> list[BaseException | None]:
        """Write several task runs in one commit: what `save_task_run` does for each.

        Each goes in a savepoint of its own, so one that fails is left out and the others
        are committed; returns, for each, None or the error it got (every one of them, if
        the commit itself failed, or if SQLite rolled back the whole transaction).
        """
        errors: list[BaseException | None] = [None] * len(saves)
        committed: list[tuple[str, int]] = []
        try:
            with self.transaction() as conn:
                for i, save in enumerate(saves):
                    conn.execute("SAVEPOINT task_run")
                    try:
                        number = self._write_task_run(conn, *save)
                    except Exception as exc:
                        if not conn.in_transaction:  # all rolled back: a full disk, say
                            raise
                        conn.execute("ROLLBACK TO task_run")
                        errors[i] = DiskFullError(self.path) if is_full(exc) else exc
                    else:
                        if number is not None:  # None: its flow run has ended
                            committed.append((save.run.flow_run_id, number))
                    conn.execute("RELEASE task_run")
        except BaseException as exc:
            return [error or exc for error in errors]
        for run_id, number in committed:
            self._remember(run_id, number)
        for save, error in zip(saves, errors, strict=True):
            fault = _TASK_SAVED_FAULTS.get(save.run.state)
            if fault and error is None:
                fault_point(fault)
        return errors

    def _write_task_run(
        self,
        conn: sqlite3.Connection,
        run: TaskRun,
        states: Sequence[StateRow],
        cache: tuple[str, float | None] | None,
        logs: Sequence[LogRow],
        answer: Callable[[], bool] | None = None,
    ) -> int | None:
        """The statements of one task run's save; returns its run number, or None when
        `answer` said no or its flow run has ended, and only the log lines were written."""
        if (answer is not None and not answer()) or (
            not run.standalone and _flow_run_ended(conn, run.flow_run_id)
        ):
            if logs:
                insert_logs(conn, logs)
            return None
        number = self._run_number(conn, run.flow_run_id)
        conn.execute(*_task_run_row(number << 32 | run.position, run, history_lines(states)))
        if cache is not None and run.result_serializer is not None:
            put_cache_entry(conn, cache[0], run, cache[1])
        if logs:
            insert_logs(conn, logs)
        return number

    def _end_unfinished_task_runs(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        state: StateName,
        message: str | None,
        now: float,
    ) -> int:
        """End the task runs of flow run `run_id` that are not finished, as it ended in
        `state`; returns how many."""
        task_state = task_state_after(state).value
        message = redact_optional(message) or f"its flow run ended {state.value}"
        marks = ",".join("?" * len(TERMINAL_STATES))
        cursor = conn.execute(
            "UPDATE task_runs SET state = ?, state_message = ?, ended = ?,"
            f" history = history || ? WHERE {IN_RUN} AND state NOT IN ({marks})",
            (
                task_state,
                message,
                now,
                history_lines([(task_state, message, now)]),
                run_id,
                run_id,
                *TERMINAL_STATES,
            ),
        )
        return cursor.rowcount

    def task_runs(self, flow_run_id: str, *, with_results: bool = False) -> list[TaskRun]:
        """A flow run's task runs in call order; inline result bytes only if asked for."""
        data = "result_data" if with_results else "NULL"
        rows = self.conn.execute(
            f"SELECT {TASK_RUN_COLUMNS}, {data}, result_preview FROM task_runs"
            f" WHERE {IN_RUN} ORDER BY num",
            (flow_run_id, flow_run_id),
        ).fetchall()
        return [TaskRun(*row) for row in rows]

    def task_runs_at(self, flow_run_id: str, positions: Sequence[int]) -> list[TaskRun]:
        """The task runs of a flow run at these call positions, in call order (no result
        bytes), read by primary key."""
        columns = f"{TASK_RUN_COLUMNS}, NULL, result_preview"
        return [TaskRun(*row) for row in self._task_rows_at(flow_run_id, positions, columns)]

    def task_run_progress(self, flow_run_id: str, from_position: int = 0) -> list[Progress]:
        """What tells a change of each task run of a flow run from `from_position` on, in
        call order: a reader that keeps these sees any new state as a new `Progress`
        (its history only grows), without reading the rows."""
        rows = self.conn.execute(
            "SELECT position, state, attempts, length(history), created FROM task_runs"
            " WHERE num >= (SELECT (num << 32) + ? FROM run_numbers WHERE run_id = ?)"
            " AND num < (SELECT (num + 1) << 32 FROM run_numbers WHERE run_id = ?) ORDER BY num",
            (from_position, flow_run_id, flow_run_id),
        ).fetchall()
        return [Progress(*row) for row in rows]

    def task_run_result(self, flow_run_id: str, position: int) -> StoredResult | None:
        row = self.conn.execute(
            "SELECT result_serializer, result_data, result_ref, result_preview FROM task_runs"
            " WHERE num = (SELECT num << 32 FROM run_numbers WHERE run_id = ?) | ?",
            (flow_run_id, position),
        ).fetchone()
        return StoredResult(*row) if row and row[0] else None

    def task_state_counts(self, flow_run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each flow run: how many of its task runs are in each state."""
        counts: dict[str, dict[str, int]] = {run_id: {} for run_id in flow_run_ids}
        if not flow_run_ids:
            return counts
        marks = ",".join("?" * len(flow_run_ids))
        for run_id, state, n in self.conn.execute(
            "SELECT r.run_id, t.state, COUNT(*) FROM run_numbers r JOIN task_runs t"
            " ON t.num >= r.num << 32 AND t.num < (r.num + 1) << 32"
            f" WHERE r.run_id IN ({marks}) GROUP BY r.run_id, t.state",
            tuple(flow_run_ids),
        ):
            counts[run_id][state] = n
        return counts


def _flow_run_ended(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT ended FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
    return row is not None and row[0] is not None


def _upsert_task_run(nulls: tuple[str, ...] = ()) -> str:
    """The task-run upsert, with NULL literals for the `nulls` columns; its new states
    are appended to the row's history."""
    columns = [c.strip() for c in f"{TASK_RUN_COLUMNS}, result_data, result_preview".split(",")]
    values = ",".join("NULL" if c in nulls else "?" for c in ["num", *columns, "history"])
    return (
        f"INSERT INTO task_runs (num, {', '.join(columns)}, history) VALUES ({values})"
        " ON CONFLICT (num) DO UPDATE SET"
        + ",".join(f" {c} = excluded.{c}" for c in columns[2:])
        + ", history = history || excluded.history"
    )


_UPSERT_TASK_RUN = _upsert_task_run()
_UPSERT_PLAIN_TASK_RUN = _upsert_task_run(
    ("state_message", "result_ref", "error_type", "error_message", "traceback")
)
"""The upsert of a row with no message, error or blob: most writes (see `_task_run_row`)."""
_UPSERT_TOLD_TASK_RUN = _upsert_task_run(("result_ref", "error_type", "error_message", "traceback"))
"""The upsert of a row with a message but no error or blob: a cache hit, a retry's start."""


def _task_run_row(num: int, run: TaskRun, history: str) -> tuple[str, tuple[Any, ...]]:
    """The upsert of a task run's row, with `history` (its new states' lines) appended,
    and its parameters.

    The sqlite3 module looks for an adapter for every None (and bytes) value it binds,
    which costs more than binding the rest of the row; a row with no error or blob (most
    writes) gets a statement with NULL literals in their place instead.
    """
    if (
        run.result_ref is None
        and run.error_type is None
        and run.error_message is None
        and run.traceback is None
    ):
        if run.state_message is None:
            return _UPSERT_PLAIN_TASK_RUN, (num, *_row_head(run), *_row_tail(run, history))
        return _UPSERT_TOLD_TASK_RUN, (
            num,
            *_row_head(run),
            redact(run.state_message),
            *_row_tail(run, history),
        )
    return _UPSERT_TASK_RUN, (
        num,
        *_row_head(run),
        redact_optional(run.state_message),
        run.attempts,
        run.inputs_hash,
        run.cache_key,
        run.result_ref,
        run.result_serializer,
        run.error_type,
        redact_optional(run.error_message),
        redact_optional(run.traceback),
        *_row_end(run, history),
    )


def _row_head(run: TaskRun) -> tuple[Any, ...]:
    return (
        run.flow_run_id,
        run.position,
        run.id,
        run.standalone,
        run.task_key,
        run.name,
        run.dynamic_key,
        run.state,
    )


def _row_tail(run: TaskRun, history: str) -> tuple[Any, ...]:
    """The columns after the message, of a row with no error or blob."""
    return (
        run.attempts,
        run.inputs_hash,
        run.cache_key,
        run.result_serializer,
        *_row_end(run, history),
    )


def _row_end(run: TaskRun, history: str) -> tuple[Any, ...]:
    return (
        run.created,
        run.started,
        run.ended,
        run.tags,
        run.upstream,
        run.result_data,
        run.result_preview,
        history,
    )
