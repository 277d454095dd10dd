"""Paused flow runs (`orchlite.flow_runs`): what a paused run waits for, the resume request
another process leaves for it with the run's verdict, and suspension.

A pause row's `status` says where the pause is:

- `waiting`: the run's process waits for a resume request; `submitted`: one is there, with
  its input, for the process to check; then `accepted` (the run goes on) or `refused` (it
  waits again; `verdict` says why).
- `suspending`: the daemon is stopping and asked the process to suspend; `suspended`: the
  process is gone and the run stays PAUSED with no process (so nothing reaps it), its
  completed task runs recorded; `relaunch`: a resume request reached a suspended run, for
  the daemon to start the run again from its beginning (see `orchlite.daemon.suspended`).

`answers` holds, by pause key, the input each accepted pause of the run took, so a run
relaunched from its beginning answers its earlier pauses without waiting.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..states import StateName
from .runs import FlowRuns

_COLUMNS = ("key", "schema", "deadline", "status", "input", "verdict", "answers")
_AWAITS_REQUEST = ("waiting", "refused")


class Pauses(FlowRuns):
    def pause_flow_run(
        self, run_id: str, key: str, schema: str | None, deadline: float, message: str
    ) -> None:
        """Record the run PAUSED at pause `key`, waiting until `deadline` for a resume
        request (the answers of its earlier pauses are kept)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO run_pauses (flow_run_id, key, schema, deadline, status, input,"
                " verdict, updated) VALUES (?, ?, ?, ?, 'waiting', NULL, NULL, ?)"
                " ON CONFLICT (flow_run_id) DO UPDATE SET key = excluded.key,"
                " schema = excluded.schema, deadline = excluded.deadline, status = 'waiting',"
                " input = NULL, verdict = NULL, updated = excluded.updated",
                (run_id, key, schema, deadline, time.time()),
            )
            self.set_flow_run_state(run_id, StateName.PAUSED, message)

    def pause_of(self, run_id: str) -> dict[str, Any] | None:
        """The run's pause: key, schema (JSON), deadline, status, input (JSON), verdict and
        answers (a dict: pause key -> accepted input as JSON); None if it never paused."""
        row = self.conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM run_pauses WHERE flow_run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        pause = dict(zip(_COLUMNS, row, strict=True))
        pause["answers"] = json.loads(pause["answers"] or "{}")
        return pause

    def request_resume(self, run_id: str, run_input: str | None) -> tuple[str, str] | None:
        """Leave a resume request for a PAUSED run; returns (its status, the key of the
        pause it is for): status "submitted" for a run whose process waits, "relaunch"
        for a suspended one. None if the run is not waiting for one."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT p.status, p.key FROM run_pauses p JOIN flow_runs r"
                " ON r.id = p.flow_run_id WHERE p.flow_run_id = ? AND r.state = 'PAUSED'",
                (run_id,),
            ).fetchone()
            if row is None or row[0] not in (*_AWAITS_REQUEST, "suspended"):
                return None
            status = "relaunch" if row[0] == "suspended" else "submitted"
            conn.execute(
                "UPDATE run_pauses SET status = ?, input = ?, verdict = NULL, updated = ?"
                " WHERE flow_run_id = ?",
                (status, run_input, time.time(), run_id),
            )
            return status, row[1]

    def settle_resume(self, run_id: str, accepted: bool, verdict: str | None = None) -> None:
        """The paused run's answer to a resume request: accepted (it runs again, and the
        input is kept as the pause's answer) or refused (it goes on waiting; `verdict` says
        why)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT key, input, answers FROM run_pauses WHERE flow_run_id = ?", (run_id,)
            ).fetchone()
            answers = json.loads(row[2] or "{}") if row else {}
            if accepted and row is not None:
                answers[row[0]] = row[1]
            conn.execute(
                "UPDATE run_pauses SET status = ?, verdict = ?, answers = ?, updated = ?"
                " WHERE flow_run_id = ?",
                (
                    "accepted" if accepted else "refused",
                    verdict,
                    json.dumps(answers),
                    time.time(),
                    run_id,
                ),
            )
            if accepted:
                self.set_flow_run_state(run_id, StateName.RUNNING, "resumed")

    def ask_to_suspend(self, run_id: str) -> bool:
        """Ask a paused run's process to suspend (the daemon, stopping); False if the run
        is not waiting at a pause."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE run_pauses SET status = 'suspending', updated = ?"
                " WHERE flow_run_id = ? AND status IN ('waiting', 'refused')"
                " AND EXISTS (SELECT 1 FROM flow_runs WHERE id = ? AND state = 'PAUSED')",
                (time.time(), run_id, run_id),
            )
            return cursor.rowcount == 1

    def suspend(self, run_id: str, message: str) -> bool:
        """In the run's process, as it exits: the run stays PAUSED with no process (the
        reaper leaves a run without a pid alone); False if it is no longer paused."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE flow_runs SET pid = NULL, pid_start = NULL, heartbeat = NULL,"
                " state_message = ? WHERE id = ? AND state = 'PAUSED'",
                (message, run_id),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute(
                "UPDATE run_pauses SET status = 'suspended', updated = ? WHERE flow_run_id = ?",
                (time.time(), run_id),
            )
            self._insert_history(conn, run_id, StateName.PAUSED.value, message, time.time())
            return True

    def suspended_runs(self) -> list[tuple[str, str, float]]:
        """The suspended runs: (run id, pause status, pause deadline); the status is
        "relaunch" once a resume request came, else "suspended"."""
        rows = self.conn.execute(
            "SELECT p.flow_run_id, p.status, p.deadline FROM run_pauses p"
            " JOIN flow_runs r ON r.id = p.flow_run_id"
            " WHERE p.status IN ('suspended', 'relaunch') AND r.state = 'PAUSED'"
            " AND r.pid IS NULL"
        ).fetchall()
        return [(row[0], row[1], float(row[2])) for row in rows]

    def claim_relaunch(self, run_id: str, message: str) -> bool:
        """Take a suspended run with a resume request for a new process: PENDING, to be
        adopted by the process started for it; False if another daemon took it first."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT p.status, r.state, r.pid FROM run_pauses p"
                " JOIN flow_runs r ON r.id = p.flow_run_id WHERE p.flow_run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None or row != ("relaunch", StateName.PAUSED.value, None):
                return False
            return self.set_flow_run_state(run_id, StateName.PENDING, message)
