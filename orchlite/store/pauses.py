"""Paused flow runs (`orchlite.flow_runs`): what a paused run waits for, and the resume
request another process leaves for it, with the run's verdict."""

from __future__ import annotations

import time
from typing import Any

from ..states import StateName
from .runs import FlowRuns


class Pauses(FlowRuns):
    def pause_flow_run(
        self, run_id: str, key: str | None, schema: str | None, deadline: float, message: str
    ) -> None:
        """Record the run PAUSED, waiting until `deadline` for a resume request."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_pauses (flow_run_id, key, schema, deadline, status,"
                " input, verdict, updated) VALUES (?, ?, ?, ?, 'waiting', NULL, NULL, ?)",
                (run_id, key, schema, deadline, time.time()),
            )
            self.set_flow_run_state(run_id, StateName.PAUSED, message)

    def pause_of(self, run_id: str) -> dict[str, Any] | None:
        """The run's pause: key, schema (JSON), deadline, status (waiting, submitted,
        accepted, refused), input (JSON) and verdict; None if it never paused."""
        row = self.conn.execute(
            "SELECT key, schema, deadline, status, input, verdict FROM run_pauses"
            " WHERE flow_run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        names = ("key", "schema", "deadline", "status", "input", "verdict")
        return dict(zip(names, row, strict=True))

    def request_resume(self, run_id: str, run_input: str | None) -> bool:
        """Leave a resume request for a PAUSED run; False if it is not waiting for one."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE run_pauses SET status = 'submitted', input = ?, verdict = NULL,"
                " updated = ? WHERE flow_run_id = ? AND status IN ('waiting', 'refused')"
                " AND EXISTS (SELECT 1 FROM flow_runs WHERE id = ? AND state = 'PAUSED')",
                (run_input, time.time(), run_id, run_id),
            )
            return cursor.rowcount == 1

    def settle_resume(self, run_id: str, accepted: bool, verdict: str | None = None) -> None:
        """The paused run's answer to a resume request: accepted (it runs again) or refused
        (it goes on waiting; `verdict` says why)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE run_pauses SET status = ?, verdict = ?, updated = ? WHERE flow_run_id = ?",
                ("accepted" if accepted else "refused", verdict, time.time(), run_id),
            )
            if accepted:
                self.set_flow_run_state(run_id, StateName.RUNNING, "resumed")
