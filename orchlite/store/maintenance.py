"""Upkeep of the store: retention (`orch gc`), and the checks and repairs of `orch doctor`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from ..states import TERMINAL, StateName
from .sql import RETRIED_BY_LIVE_RUNS, TERMINAL_STATES, UNFINISHED_STATES
from .task_runs import TaskRuns


class Maintenance(TaskRuns):
    """Retention and repairs; deleting a run deletes its task runs, history and logs."""

    def orphaned_task_runs(self) -> list[tuple[str, int, str, str, str]]:
        """Unfinished task runs of ended flow runs: (flow run, position, task run name,
        task run state, flow run state) each. Reads every task run (for `orch doctor`)."""
        marks = ",".join("?" * len(TERMINAL_STATES))
        rows = self.conn.execute(
            "SELECT t.flow_run_id, t.position, t.name, t.state, f.state"
            " FROM task_runs t JOIN flow_runs f ON f.id = t.flow_run_id"
            f" WHERE t.state NOT IN ({marks}) AND f.state IN ({marks}) ORDER BY t.num",
            (*TERMINAL_STATES, *TERMINAL_STATES),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def end_orphaned_task_runs(self, run_ids: Iterable[str], now: float | None = None) -> int:
        """End the unfinished task runs of these ended flow runs as their flow run ended
        (see `orphaned_task_runs`); returns how many were ended."""
        now = time.time() if now is None else now
        ended = 0
        with self.transaction() as conn:
            for run_id in dict.fromkeys(run_ids):
                row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
                if row is None or StateName(row[0]) not in TERMINAL:
                    continue
                message = f"its flow run ended {row[0]}; ended by orch doctor"
                ended += self._end_unfinished_task_runs(
                    conn, run_id, StateName(row[0]), message, now
                )
        return ended

    def delete_runs_before(self, cutoff: float) -> int:
        """Delete finished runs created before `cutoff`, with their tasks and logs.

        A run that an unfinished run retries is kept, with its subflow runs: the retry may
        still resume from their results.
        """
        marks = ",".join("?" * len(TERMINAL_STATES))
        with self.transaction() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)",
            )
            conn.execute("DELETE FROM doomed")
            conn.execute(
                f"WITH RECURSIVE resumable(id) AS ({RETRIED_BY_LIVE_RUNS}"
                " UNION SELECT f.id FROM flow_runs f JOIN resumable r ON f.parent_run_id = r.id)"
                " INSERT INTO doomed SELECT id FROM flow_runs WHERE created < ?"
                f" AND state IN ({marks}) AND id NOT IN (SELECT id FROM resumable)",
                (*UNFINISHED_STATES, cutoff, *TERMINAL_STATES),
            )
            conn.execute(
                "INSERT OR IGNORE INTO doomed SELECT DISTINCT flow_run_id FROM task_runs"
                " WHERE standalone = 1 AND created < ?",
                (cutoff,),
            )
            deleted = conn.execute("SELECT COUNT(*) FROM doomed").fetchone()[0]
            ranges = conn.execute(
                "SELECT num << 32, (num + 1) << 32 FROM run_numbers"
                " WHERE run_id IN (SELECT id FROM doomed)"
            ).fetchall()
            for table in ("state_history", "task_runs"):
                conn.executemany(f"DELETE FROM {table} WHERE num >= ? AND num < ?", ranges)
            for sql in (
                "DELETE FROM logs WHERE flow_run_id IN (SELECT id FROM doomed)",
                "DELETE FROM artifacts WHERE flow_run_id IN (SELECT id FROM doomed)",
                "DELETE FROM run_numbers WHERE run_id IN (SELECT id FROM doomed)",
                "DELETE FROM flow_runs WHERE id IN (SELECT id FROM doomed)",
            ):
                conn.execute(sql)
            conn.execute(
                "DELETE FROM cache_entries WHERE expires IS NOT NULL AND expires < ?",
                (time.time(),),
            )
        return int(deleted)

    def referenced_blobs(self) -> set[str]:
        """The digest of every blob a row stores its result in."""
        return {digest for _kind, _row, digest in self.blob_references()}

    def integrity_check(self) -> str:
        """ "ok", or the first problem `PRAGMA integrity_check` reports."""
        problems = self.integrity_problems(1)
        return problems[0] if problems else "ok"

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """What `PRAGMA integrity_check` reports; empty when the database is sound."""
        try:
            rows = self.conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def blob_references(self) -> list[tuple[str, str, str]]:
        """(kind, row, digest) for every row that stores its result in a blob.

        kind is "flow run", "task run" or "cache entry"; row names it (a run id, a run id
        and call position, or a cache key).
        """
        refs: list[tuple[str, str, str]] = []
        for run_id, ref in self.conn.execute(
            "SELECT id, result_ref FROM flow_runs WHERE result_ref IS NOT NULL"
        ):
            refs.append(("flow run", run_id, ref))
        for run_id, position, ref in self.conn.execute(
            "SELECT flow_run_id, position, result_ref FROM task_runs WHERE result_ref IS NOT NULL"
        ):
            refs.append(("task run", f"{run_id}#{position}", ref))
        for key, ref in self.conn.execute(
            "SELECT key, result_ref FROM cache_entries WHERE result_ref IS NOT NULL"
        ):
            refs.append(("cache entry", key, ref))
        return refs

    def delete_cache_entries_for_blobs(self, digests: Iterable[str]) -> int:
        """Delete the cache entries whose result is one of these blobs; returns how many."""
        deleted = 0
        with self.transaction() as conn:
            for digest in digests:
                cursor = conn.execute("DELETE FROM cache_entries WHERE result_ref = ?", (digest,))
                deleted += cursor.rowcount
        return deleted
