"""The runs a flow's health is computed from (`orchlite.health`), read in one query."""

from __future__ import annotations

from ..states import StateName
from .connection import Database
from .records import HealthRun

FAILED_STATES = (StateName.FAILED.value, StateName.CRASHED.value, StateName.TIMED_OUT.value)
"""The states counted as failures."""


class Health(Database):
    def health_runs(self, since: float) -> list[HealthRun]:
        """Every flow run created at or after `since`, oldest first, with the slot of those a
        schedule started and the message of those that failed.

        A range on the created index, each slot by its run's primary key: a month of a busy
        project (tens of thousands of runs) reads in tens of milliseconds.
        """
        marks = ",".join("?" * len(FAILED_STATES))
        rows = self.conn.execute(
            "SELECT r.flow_name, r.state, r.created, r.started, r.ended, s.slot,"
            f" CASE WHEN r.state IN ({marks}) THEN r.state_message END"
            " FROM flow_runs r LEFT JOIN schedule_slots s"
            " ON s.run_id = r.id AND r.trigger = 'schedule'"
            " WHERE r.created >= ? ORDER BY r.created",
            (*FAILED_STATES, since),
        ).fetchall()
        return [HealthRun(*row) for row in rows]
