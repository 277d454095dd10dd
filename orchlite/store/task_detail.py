"""One task run in full: its state changes read as attempts, the task runs it waited for
and those that waited for it, and its cache entry (no result bytes: previews only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .records import CacheEntry, HistoryEntry, StoredResult, TaskRun
from .sql import IN_RUN
from .task_runs import TaskRuns

LINKS_SHOWN = 200
"""Upstream or downstream task runs read at most (a reduce over a map waits for them all)."""


@dataclass(slots=True)
class Attempt:
    """One execution of a task run's body, from its state history."""

    number: int
    state: str
    """RUNNING while it runs; then how it ended (RETRYING: it failed and another follows)."""
    started: float
    ended: float | None
    message: str | None
    """How it ended, as recorded (the error of one that failed)."""


@dataclass(slots=True)
class TaskRunDetail:
    task: TaskRun
    history: list[HistoryEntry]
    upstream: list[TaskRun]
    """The task runs it waited for (at most `LINKS_SHOWN`), in call order."""
    downstream: list[TaskRun]
    """The task runs that waited for it (at most `LINKS_SHOWN`), in call order."""
    downstream_count: int = 0
    cache_entry: CacheEntry | None = None
    """The entry under its cache key (its result, or the one that answered it), if kept,
    expired or not; without its bytes."""
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def upstream_count(self) -> int:
        return len(upstream_positions(self.task))


def upstream_positions(task: TaskRun) -> list[int]:
    try:
        found = json.loads(task.upstream or "[]")
    except ValueError:
        return []
    return sorted({p for p in found if isinstance(p, int)}) if isinstance(found, list) else []


def attempts_of(history: list[HistoryEntry]) -> list[Attempt]:
    """Each RUNNING starts an attempt; the next state other than RUNNING ends it.

    A cached or reused task run, answered without running, has none.
    """
    attempts: list[Attempt] = []
    for entry in history:
        if entry.state == "RUNNING":
            attempts.append(Attempt(len(attempts) + 1, "RUNNING", entry.ts, None, None))
        elif attempts and attempts[-1].ended is None and entry.state != "PENDING":
            last = attempts[-1]
            last.state, last.ended, last.message = entry.state, entry.ts, entry.message
    return attempts


class TaskDetails(TaskRuns):
    """One task run with what surrounds it, for the TUI's task run screen."""

    def task_run_detail(self, flow_run_id: str, position: int) -> TaskRunDetail | None:
        """Task run `position` of `flow_run_id` in full; None if there is none."""
        found = self.task_runs_at(flow_run_id, [position])
        if not found:
            return None
        task = found[0]
        history = self.history(flow_run_id, position)
        upstream = self.task_runs_at(flow_run_id, upstream_positions(task)[:LINKS_SHOWN])
        waiting = self._downstream_positions(flow_run_id, position)
        return TaskRunDetail(
            task=task,
            history=history,
            upstream=upstream,
            downstream=self.task_runs_at(flow_run_id, waiting[:LINKS_SHOWN]),
            downstream_count=len(waiting),
            cache_entry=self._cache_entry(task.cache_key) if task.cache_key else None,
            attempts=attempts_of(history),
        )

    def _downstream_positions(self, flow_run_id: str, position: int) -> list[int]:
        """The positions of the task runs of the run whose upstream holds `position`."""
        rows = self.conn.execute(
            "SELECT position FROM task_runs"
            f" WHERE {IN_RUN} AND upstream != '[]' AND json_valid(upstream)"
            " AND EXISTS (SELECT 1 FROM json_each(upstream) WHERE value = ?) ORDER BY num",
            (flow_run_id, flow_run_id, position),
        ).fetchall()
        return [row[0] for row in rows]

    def _cache_entry(self, key: str) -> CacheEntry | None:
        row = self.conn.execute(
            "SELECT key, task_key, task_run_id, result_serializer, result_ref, result_preview,"
            " created, expires FROM cache_entries WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        stored = StoredResult(row[3], None, row[4], row[5])
        return CacheEntry(row[0], row[1], row[2], stored, row[6], row[7])
