"""Alert deliveries: which process sends an alert for a run.

Every process that sees a run end in an alert's states (the run's own, a `--subprocess`
supervisor, the daemon, a command that reaps or cancels it) tries to claim the (run, rule,
state) delivery before sending; the first claim wins and the others send nothing. A claim is
one attempt: the process that holds it sends once (with the rule's own retries), and an alert
whose sender dies before it is sent is not sent again.
"""

from __future__ import annotations

import os
import socket
import time

from .connection import Database


class Deliveries(Database):
    def claim_alert(self, run_id: str, rule: str, state: str, now: float | None = None) -> bool:
        """Claim the alert `rule` for `run_id` ending in `state`; False if already claimed."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO alert_deliveries (flow_run_id, rule, state, claimed, pid,"
                " host) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, rule, state, now, os.getpid(), socket.gethostname()),
            )
            return cursor.rowcount == 1

    def alert_claims(self, run_id: str) -> list[tuple[str, str, int]]:
        """(rule, state, pid of the claimant) of each alert claimed for `run_id`."""
        rows = self.conn.execute(
            "SELECT rule, state, pid FROM alert_deliveries WHERE flow_run_id = ? ORDER BY claimed",
            (run_id,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
