"""Cache entries: a task's result stored under its cache key, until it expires."""

from __future__ import annotations

import sqlite3
import time

from .connection import Database
from .records import CacheEntry, StoredResult, TaskRun


class Cache(Database):
    """Cache entries by key (written with their task run: see `put_cache_entry`)."""

    def cached_result(self, key: str, now: float | None = None) -> StoredResult | None:
        """The result of the unexpired entry for `key`, if any (what a cache hit reads)."""
        row = self.conn.execute(
            "SELECT result_serializer, result_data, result_ref, result_preview, expires"
            " FROM cache_entries WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        if row[4] is not None and row[4] <= (time.time() if now is None else now):
            return None
        return StoredResult(row[0], row[1], row[2], row[3])

    def list_cache_entries(self, limit: int = 1000) -> list[CacheEntry]:
        rows = self.conn.execute(
            "SELECT key, task_key, task_run_id, result_serializer, NULL, result_ref,"
            " created, expires FROM cache_entries ORDER BY created DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [CacheEntry(r[0], r[1], r[2], StoredResult(r[3], r[4], r[5]), *r[6:]) for r in rows]

    def clear_cache(self, task_key: str | None = None) -> int:
        with self.transaction() as conn:
            if task_key is None:
                cursor = conn.execute("DELETE FROM cache_entries")
            else:
                cursor = conn.execute("DELETE FROM cache_entries WHERE task_key = ?", (task_key,))
            return cursor.rowcount


def put_cache_entry(
    conn: sqlite3.Connection, key: str, run: TaskRun, expires: float | None
) -> None:
    """Store task run `run`'s result under `key`, in the caller's transaction (the one that
    records the run, so an entry never exists without its result)."""
    conn.execute(
        "INSERT OR REPLACE INTO cache_entries (key, task_key, task_run_id,"
        " result_ref, result_data, result_serializer, result_preview, created, expires)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            key,
            run.task_key,
            run.id,
            run.result_ref,
            run.result_data,
            run.result_serializer,
            run.result_preview,
            run.ended or time.time(),
            expires,
        ),
    )
