"""Paused schedules (`orch schedule pause NAME`): the daemon fires none of their slots.

A pause is a row per schedule name. Resuming deletes it and moves the marks of the
schedule's keys to the time of the resume, in one transaction, so the slots that passed
while it was paused are never caught up: the first slot after the resume fires.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .scheduling import Scheduling


class SchedulePauses(Scheduling):
    def pause_schedule(self, name: str, now: float | None = None) -> bool:
        """Pause the schedule `name`; False if it was paused already."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO schedule_pauses (name, paused) VALUES (?, ?)", (name, now)
            )
            return cursor.rowcount == 1

    def resume_schedule(self, name: str, keys: Sequence[str], now: float | None = None) -> bool:
        """Resume the schedule `name` and mark its `keys` handled up to `now` (no catch-up
        of the slots it missed while paused); False if it was not paused."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM schedule_pauses WHERE name = ?", (name,))
            if cursor.rowcount != 1:
                return False
            for key in keys:
                self._mark(conn, key, now, now)
            return True

    def paused_schedules(self) -> dict[str, float]:
        """Each paused schedule's name, and when it was paused."""
        rows = self.conn.execute("SELECT name, paused FROM schedule_pauses").fetchall()
        return {row[0]: float(row[1]) for row in rows}
