"""What the daemon claims: schedule slots, trigger runs and flow-level retries.

Each claim records a run SCHEDULED with a `schedule_slots` row (its key, and when it is due)
in one transaction, under a run id derived from what fired it, so a slot, an event or a
retry is claimed once even across restarts or two daemons. Marks remember, per schedule or
trigger key, the newest slot handled.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import NamedTuple

from ..states import StateName
from .records import FlowRun, ScheduledSlot
from .runs import FlowRuns
from .sql import FLOW_RUN_COLUMNS, live_retry

_SLOT_COLUMNS = "s.run_id, s.key, s.slot, r.target, r.parameters, r.state, r.trigger"


class _RunSpec(NamedTuple):
    """What a claimed run runs."""

    flow_name: str
    name: str
    target: str | None
    parameters: str
    started_by: str | None = None
    """The name of the schedule or trigger that claimed it (`schedule_slots.name`)."""
    run_options: str | None = None
    """How it starts (`FlowRuns.run_options`)."""


class Scheduling(FlowRuns):
    """Claims of scheduled, triggered and retried runs, and the marks of their keys."""

    # -- claims -----------------------------------------------------------------------

    def claim_slot(
        self,
        *,
        run_id: str,
        key: str,
        slot: float,
        flow_name: str,
        name: str,
        target: str,
        parameters: str,
        skip_reason: str | None = None,
        now: float | None = None,
        started_by: str | None = None,
        run_options: str | None = None,
        trigger: str = "schedule",
    ) -> bool:
        """Claim one slot of a schedule: record its run SCHEDULED (or SKIPPED with the
        reason) and move the schedule's mark to the slot, in one transaction. `started_by`
        names the schedule, for the run to read (`orchlite.runtime.deployment.name`);
        `run_options` how its run starts; `trigger` is "schedule", or "backfill" for
        `orch backfill`.

        False when a run with `run_id` already exists: the slot was claimed before (by
        another daemon, or before a restart), and nothing but the mark is written.
        """
        now = time.time() if now is None else now
        spec = _RunSpec(flow_name, name, target, parameters, started_by, run_options)
        with self.transaction("slot_claimed") as conn:
            claimed = self._claim(conn, now, run_id, key, slot, trigger, spec)
            if claimed and skip_reason is not None:
                self.set_flow_run_state(run_id, StateName.SKIPPED, skip_reason, now=now)
            self._mark(conn, key, slot, now)
        return claimed

    def claim_trigger_run(
        self,
        *,
        run_id: str,
        key: str,
        flow_name: str,
        name: str,
        target: str,
        parameters: str,
        trigger: str,
        message: str | None = None,
        now: float | None = None,
        started_by: str | None = None,
        run_options: str | None = None,
    ) -> bool:
        """Record a trigger's run SCHEDULED (with `message`, e.g. what fired it) and a
        `schedule_slots` row under the trigger's key at `now` (and `started_by`, its name),
        so the daemon starts it like a scheduled run. False, writing nothing, when `run_id`
        already exists.
        """
        now = time.time() if now is None else now
        spec = _RunSpec(flow_name, name, target, parameters, started_by, run_options)
        with self.transaction("trigger_run_claimed") as conn:
            claimed = self._claim(conn, now, run_id, key, now, trigger, spec, message)
        return claimed

    def claim_retry_run(
        self,
        *,
        run_id: str,
        retry_of: str,
        key: str,
        due: float,
        prior_attempts: int,
        message: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Record the next attempt of run `retry_of` as a new SCHEDULED run (trigger
        "retry", same flow, target, parameters and run options) with a `schedule_slots` row
        under `key` at `due`. False, writing nothing, when `run_id` already exists, or when another
        unfinished run retries `retry_of` already (e.g. by hand with `orch retry`)."""
        now = time.time() if now is None else now
        with self.transaction("retry_run_claimed") as conn:
            claimed = self._claim(conn, now, run_id, key, due, "retry", None, message, retry_of)
            if claimed:
                conn.execute(
                    "UPDATE flow_runs SET prior_attempts = ? WHERE id = ?",
                    (prior_attempts, run_id),
                )
        return claimed

    def _claim(
        self,
        conn: sqlite3.Connection,
        now: float,
        run_id: str,
        key: str,
        slot: float,
        trigger: str,
        spec: _RunSpec | None,
        message: str | None = None,
        retry_of: str | None = None,
    ) -> bool:
        """Record run `run_id` SCHEDULED, running `spec` (None: what run `retry_of` ran),
        with a `schedule_slots` row under `key` at `slot`, in the caller's transaction.

        False, writing nothing, when the run exists already (claimed before), or when it
        would retry a run that another unfinished run retries already.
        """
        if conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (run_id,)).fetchone():
            return False
        if retry_of is not None:
            if live_retry(conn, retry_of, run_id) is not None:
                return False
            old = self.get_flow_run(retry_of)
            spec = spec or _RunSpec(
                old.flow_name,
                old.name,
                old.target,
                old.parameters,
                run_options=self.run_options(retry_of),
            )
        assert spec is not None, "a claim names its run's flow, or the run it retries"
        self.create_flow_run(
            run_id=run_id,
            flow_name=spec.flow_name,
            name=spec.name,
            parameters=spec.parameters,
            state=StateName.SCHEDULED,
            message=message,
            target=spec.target,
            trigger=trigger,
            retry_of=retry_of,
            now=now,
            run_options=spec.run_options,
        )
        started_by = spec.started_by if retry_of is None else None
        conn.execute(
            "INSERT INTO schedule_slots (run_id, key, slot, name) VALUES (?,?,?,?)",
            (run_id, key, slot, started_by),
        )
        return True

    # -- marks ------------------------------------------------------------------------

    def schedule_mark(self, key: str, now: float) -> float:
        """The newest slot handled for schedule `key`; a new key is marked `now` first."""
        row = self.conn.execute(
            "SELECT last_fired FROM schedule_marks WHERE key = ?", (key,)
        ).fetchone()
        if row is not None:
            return float(row[0])
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO schedule_marks (key, last_fired, updated) VALUES (?,?,?)",
                (key, now, now),
            )
            row = conn.execute(
                "SELECT last_fired FROM schedule_marks WHERE key = ?", (key,)
            ).fetchone()
        return float(row[0])

    def move_trigger_mark(self, key: str, mark: float, now: float | None = None) -> None:
        """Move a trigger's mark forward to `mark` (never back)."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            self._mark(conn, key, mark, now)

    @staticmethod
    def _mark(conn: sqlite3.Connection, key: str, slot: float, now: float) -> None:
        conn.execute(
            "INSERT INTO schedule_marks (key, last_fired, updated) VALUES (?,?,?)"
            " ON CONFLICT (key) DO UPDATE SET"
            " last_fired = MAX(last_fired, excluded.last_fired), updated = excluded.updated",
            (key, slot, now),
        )

    # -- what is claimed --------------------------------------------------------------

    def record_started_by(self, run_id: str, key: str, name: str, at: float) -> None:
        """Record that the schedule `name` (key `key`) started the run `run_id` at `at`
        outside a daemon (`orch run --schedule`), as a claim would have; its mark stays."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO schedule_slots (run_id, key, slot, name) VALUES (?,?,?,?)",
                (run_id, key, at, name),
            )

    def waiting_slots(self) -> list[ScheduledSlot]:
        """Claimed slots whose run has not started yet (SCHEDULED or LATE), oldest first."""
        rows = self.conn.execute(
            f"SELECT {_SLOT_COLUMNS} FROM schedule_slots s"
            " JOIN flow_runs r ON r.id = s.run_id WHERE r.state IN ('SCHEDULED', 'LATE')"
            " ORDER BY s.slot, s.run_id"
        ).fetchall()
        return [ScheduledSlot(*row) for row in rows]

    def last_slot_runs(self) -> dict[str, ScheduledSlot]:
        """Per schedule key, the run of its newest claimed slot."""
        rows = self.conn.execute(
            f"SELECT {_SLOT_COLUMNS} FROM schedule_slots s"
            " JOIN flow_runs r ON r.id = s.run_id"
            " WHERE s.slot = (SELECT MAX(slot) FROM schedule_slots WHERE key = s.key)"
        ).fetchall()
        return {row[1]: ScheduledSlot(*row) for row in rows}

    def slot_times(self, run_ids: Sequence[str], triggers: Sequence[str]) -> dict[str, float]:
        """Per run among `run_ids` started by one of `triggers`, the slot it was claimed for."""
        if not run_ids or not triggers:
            return {}
        ids = ",".join("?" * len(run_ids))
        kinds = ",".join("?" * len(triggers))
        rows = self.conn.execute(
            f"SELECT s.run_id, s.slot FROM schedule_slots s JOIN flow_runs r ON r.id = s.run_id"
            f" WHERE s.run_id IN ({ids}) AND r.trigger IN ({kinds})",
            (*run_ids, *triggers),
        ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    def slot_key(self, run_id: str) -> str | None:
        """The schedule or trigger key a run was claimed under, if any."""
        claim = self.slot_claim(run_id)
        return None if claim is None else claim[0]

    def slot_time(self, run_id: str) -> float | None:
        """When the slot a run was claimed for was due (a trigger's run: when it fired)."""
        row = self.conn.execute(
            "SELECT slot FROM schedule_slots WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else float(row[0])

    def slot_claim(self, run_id: str) -> tuple[str, str | None] | None:
        """(key, name) of the schedule or trigger a run was claimed under, if any; the
        name is None for claims recorded before schema 13, and for retries."""
        row = self.conn.execute(
            "SELECT key, name FROM schedule_slots WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    # -- what fires triggers and retries ----------------------------------------------

    def ended_flow_runs(
        self, flow_names: Sequence[str], states: Sequence[str], since: float
    ) -> list[FlowRun]:
        """Runs of these flows that ended at or after `since` in one of `states`, by end."""
        if not flow_names or not states:
            return []
        names = ",".join("?" * len(flow_names))
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name IN ({names})"
            f" AND state IN ({marks}) AND ended >= ? ORDER BY ended, id",
            (*flow_names, *states, since),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def unretried_runs(
        self, states: Sequence[str], triggers: Sequence[str], since: float
    ) -> list[str]:
        """Top-level runs that ended in `states` at or after `since`, started by one of
        `triggers`, with a retry policy and no run that retries them; oldest first."""
        marks = ",".join("?" * len(states))
        kinds = ",".join("?" * len(triggers))
        rows = self.conn.execute(
            f"SELECT id FROM flow_runs r WHERE state IN ({marks}) AND trigger IN ({kinds})"
            " AND retry_policy IS NOT NULL AND parent_run_id IS NULL AND ended >= ?"
            " AND NOT EXISTS (SELECT 1 FROM flow_runs x WHERE x.retry_of = r.id)"
            " ORDER BY ended",
            (*states, *triggers, since),
        ).fetchall()
        return [row[0] for row in rows]
